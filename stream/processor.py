"""The worker's batch step: apply a micro-batch of raw messages to partition states, then persist.

Per-event work is a pure in-memory fold (`PartitionState.apply`); I/O happens once per batch, one
record per touched key. The store is a port (`StateSink`) so the step runs in tests without a broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from stream.folds import KpiConfig
from stream.records import Record
from stream.state import DeadLetter, PartitionState, Scoped
from stream.voice import Analyser, default_analyser

log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 30.0
BATCH_ATTEMPTS = 5  # a batch step that fails this often in a row stops the worker (BatchFailed)


class BatchFailed(Exception):
    """The batch step kept failing: the caller must stop before acknowledging the batch."""


class StateSink(Protocol):
    async def write(self, records: Sequence[tuple[int, Record]],
                    dead: Sequence[tuple[DeadLetter, bytes | None]],
                    scoped: Sequence[Scoped] = ()) -> None:
        """Persist everything; `scoped` must be on the broker before `records` (see Processor)."""

    async def read_partition(self, partition: int) -> list[Record]: ...


@dataclass(frozen=True, slots=True)
class Message:
    topic: str  # kind: tickets, calls, surveys
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Processor:
    def __init__(self, sink: StateSink, cfg: KpiConfig, bucket_s: int, ticket_horizon_s: float,
                 analyser: Analyser | None = None) -> None:
        self.sink = sink
        self.analyser = analyser or default_analyser()  # reads the survey comments (stream/voice.py)
        self.cfg = cfg
        self.bucket_s = bucket_s
        self.ticket_horizon_s = ticket_horizon_s
        self.states: dict[int, PartitionState] = {}
        self._last_expire = 0.0
        self.processed = 0

    async def state_of(self, p: int) -> PartitionState:
        st = self.states.get(p)
        if st is None:
            st = PartitionState(p, self.cfg, self.bucket_s, self.ticket_horizon_s, self.analyser)
            st.load(await self.sink.read_partition(p))
            self.states[p] = st
        return st

    async def process(self, batch: Iterable[Message], now: float | None = None) -> None:
        """Apply `batch` and persist its state; return only once the state is on the broker.

        The caller acknowledges the batch's offsets after this returns, so a failure anywhere inside
        (loading a partition's state, applying an event, writing) must never return normally: the
        in-memory state of the partitions is dropped (it may hold half the batch), reloaded from the
        state topic and the whole batch applied again, which the watermarks make exact. After
        BATCH_ATTEMPTS failures in a row it raises BatchFailed, and the worker must stop without
        acknowledging (a bug that fails every time must not be committed past).
        """
        batch = list(batch)
        delay = 0.2
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                await self._process_once(batch, now)
                self.processed += len(batch)
                return
            except Exception as exc:
                self.states.clear()  # possibly half-applied: reload from the state topic
                if attempt == BATCH_ATTEMPTS:
                    raise BatchFailed(f"batch of {len(batch)} messages failed {attempt} times") from exc
                log.exception("batch of %d messages failed (attempt %d of %d); reloading its state and "
                              "retrying in %.1f s", len(batch), attempt, BATCH_ATTEMPTS, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 4, 10.0)

    async def _process_once(self, batch: list[Message], now: float | None) -> None:
        now = time.time() if now is None else now
        now_dt = datetime.fromtimestamp(now, UTC)
        touched: dict[int, PartitionState] = {}
        dead: list[tuple[DeadLetter, bytes | None]] = []
        for m in batch:
            st = touched.get(m.partition) or await self.state_of(m.partition)
            touched[m.partition] = st
            out = st.apply(m.topic, m.offset, m.value, now=now, now_dt=now_dt)
            if isinstance(out, DeadLetter):
                dead.append((out, m.key))
        if now - self._last_expire > EXPIRE_EVERY_S:
            self._last_expire = now
            for st in self.states.values():
                st.expire(now=now)
                touched[st.p] = st
        records: list[tuple[int, Record]] = []
        scoped: list[Scoped] = []
        for p, st in touched.items():
            drained = st.drain()
            records.extend((p, r) for r in drained.records)
            scoped.extend(drained.scoped)
        await self._write(records, dead, scoped)

    async def _write(self, records: list[tuple[int, Record]], dead: list[tuple[DeadLetter, bytes | None]],
                     scoped: list[Scoped]) -> None:
        # The source offsets are acknowledged after this returns: never give up on a write, or the
        # batch would be committed without its state. The scoped copies (for the alert engine) go
        # first: a piece whose state record is on the broker is then on the scope topic too, and a
        # replay after a crash re-emits whatever has no state record yet.
        delay = 0.2
        while True:
            try:
                await self.sink.write(records, dead, scoped)
                return
            except Exception:
                log.exception("state write of %d records failed; retrying in %.1f s", len(records), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions moved to another worker: drop their state; it is reloaded if they come back."""
        for p in partitions:
            self.states.pop(p, None)
