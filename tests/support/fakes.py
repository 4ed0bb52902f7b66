"""In-memory fakes at the I/O boundary (units only; integration tests use the real broker)."""

from __future__ import annotations

from collections.abc import Sequence

from stream.processor import Scoped
from stream.scopes import scope_partition
from stream.state import DeadLetter, Record


class MemorySink:
    """A state topic in memory: an append-only log per partition."""

    def __init__(self, scope_partitions: int = 6) -> None:
        self.log: dict[int, list[Record]] = {}
        self.scope_partitions = scope_partitions
        self.scoped: dict[int, list[Record]] = {}  # the scope-partitioned topic
        self.dead: list[DeadLetter] = []
        self.fail_after: int | None = None  # write only the first N records of the next write, then raise

    async def write(self, records: Sequence[tuple[int, Record]],
                    dead: Sequence[tuple[DeadLetter, bytes | None]], scoped: Sequence[Scoped] = ()) -> None:
        for scopes, rec in scoped:
            for q in {scope_partition(s, self.scope_partitions) for s in scopes}:
                self.scoped.setdefault(q, []).append(rec)
        for i, (p, r) in enumerate(records):
            if self.fail_after is not None and i >= self.fail_after:
                self.fail_after = None
                raise ConnectionError("simulated crash mid-write")
            self.log.setdefault(p, []).append(r)
        self.dead.extend(d for d, _ in dead)

    async def read_partition(self, partition: int) -> list[Record]:
        return list(self.log.get(partition, []))

    def all_records(self) -> list[Record]:
        return [r for p in sorted(self.log) for r in self.log[p]]
