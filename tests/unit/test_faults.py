"""No acknowledged batch without its state: a failure at any step of the batch (load, apply, write) is
retried from the state topic and ends equal to the oracle; a step that keeps failing raises BatchFailed
before anything of the batch is reported done."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from services.loadgen import lifecycles, random_stream
from stream import processor as processor_module
from stream.folds import KpiConfig
from stream.processor import BatchFailed, Message, Processor
from stream.state import DeadLetter, PartitionState, Record, Scoped
from tests.support import oracle
from tests.support.fakes import MemorySink
from tests.support.pipeline import NOW, to_messages, view_of

SCOPES = ["all", "team:billing", "agent:a3", "channel:phone", "tier:vip", "queue:q1"]


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instant(_: float) -> None:
        return None
    monkeypatch.setattr(processor_module.asyncio, "sleep", instant)


class FaultySink(MemorySink):
    """A state topic that fails once on the n-th read or write (and, for writes, after a partial write)."""

    def __init__(self, *, fail_read: int | None = None, fail_write: int | None = None, partial: int = 0) -> None:
        super().__init__()
        self.fail_read, self.fail_write, self.partial = fail_read, fail_write, partial
        self.reads = self.writes = 0

    async def read_partition(self, partition: int) -> list[Record]:
        self.reads += 1
        if self.reads == self.fail_read:
            raise ConnectionError("injected: broker unreachable while loading")
        return await super().read_partition(partition)

    async def write(self, records: Sequence[tuple[int, Record]],
                    dead: Sequence[tuple[DeadLetter, bytes | None]], scoped: Sequence[Scoped] = ()) -> None:
        self.writes += 1
        if self.writes == self.fail_write:
            for p, r in records[:self.partial]:
                self.log.setdefault(p, []).append(r)
            raise ConnectionError("injected: write failed")
        await super().write(records, dead, scoped)


def fail_apply_once(monkeypatch: pytest.MonkeyPatch, at_call: int) -> list[int]:
    real = PartitionState.apply
    calls = [0]

    def apply(self: PartitionState, *a: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == at_call:
            raise RuntimeError("injected: bug in apply")
        return real(self, *a, **kw)

    monkeypatch.setattr(PartitionState, "apply", apply)
    return calls


async def feed(sink: MemorySink, messages: list[Message], batch: int = 40) -> Processor:
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    for i in range(0, len(messages), batch):
        await proc.process(messages[i:i + batch], now=NOW)
    return proc


def assert_equals_oracle(sink: MemorySink, events: list[dict[str, Any]], kind: str = "windows") -> None:
    """`windows`: every windowed KPI of every scope; `live`: the live ticket and call state."""
    view = view_of(sink)
    if kind == "windows":
        for scope in SCOPES:
            for window in ("5m", "1h", "24h"):
                got = {k: {"value": v, "count": c} for k, (v, c) in view.kpis(scope, window, now=NOW).items()}
                oracle.assert_matches(got, oracle.kpis(events, scope, window, NOW), f"{scope}/{window}")
    else:
        for scope in ("all", "team:billing", "queue:q1", "tier:vip"):
            got = {k: {"value": v, "count": c} for k, (v, c) in view.live_kpis(scope, now=NOW).items()}
            oracle.assert_matches(got, oracle.live(events, scope, NOW), f"live {scope}")


def stream_with_duplicates(seed: int, kind: str = "windows") -> tuple[list[dict[str, Any]], list[Message]]:
    rnd = random.Random(seed)
    events = random_stream(600, NOW, seed=seed) if kind == "windows" else lifecycles(400, NOW, seed=seed)
    return events, to_messages(events + [dict(e) for e in rnd.sample(events, 30)])


@pytest.mark.parametrize("kind", ["windows", "live"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("step", ["load", "apply", "write", "write-partial"])
async def test_a_failure_at_any_step_ends_equal_to_the_oracle(step: str, seed: int, kind: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    events, messages = stream_with_duplicates(seed, kind)
    rnd = random.Random(seed)
    if step == "load":
        sink = FaultySink(fail_read=rnd.randrange(1, 3))
    elif step == "write":
        sink = FaultySink(fail_write=rnd.randrange(3, 15))
    elif step == "write-partial":
        sink = FaultySink(fail_write=rnd.randrange(3, 15), partial=rnd.randrange(1, 30))
    else:
        sink = FaultySink()
        calls = fail_apply_once(monkeypatch, at_call=rnd.randrange(100, 600))
    proc = await feed(sink, messages)
    if step == "apply":
        assert calls[0] > len(messages), "the fault was injected and the batch applied again"
    else:
        assert sink.reads + sink.writes > 0
    assert proc.processed == len(messages)
    assert_equals_oracle(sink, events, kind)
    totals = view_of(sink).pipeline_counters()
    assert totals.dup == 30 and sum(totals.events.values()) == len(events)


async def test_a_state_in_memory_never_keeps_half_a_failed_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the reload, the events applied before the fault would be applied twice on retry (their
    watermarks are already past them in memory but not on the broker), or lost."""
    events, messages = stream_with_duplicates(7)
    fail_apply_once(monkeypatch, at_call=20)  # in the middle of the first batch of 40
    sink = FaultySink()
    await feed(sink, messages)
    assert_equals_oracle(sink, events)


async def test_a_step_that_keeps_failing_stops_before_the_batch_counts_as_done(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events, messages = stream_with_duplicates(3)
    sink = FaultySink()
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    await proc.process(messages[:40], now=NOW)
    written = sum(len(v) for v in sink.log.values())

    def broken(self: PartitionState, *a: Any, **kw: Any) -> Any:
        raise RuntimeError("injected: apply fails every time")

    monkeypatch.setattr(PartitionState, "apply", broken)
    with pytest.raises(BatchFailed):
        await proc.process(messages[40:80], now=NOW)
    assert sum(len(v) for v in sink.log.values()) == written, "nothing of the failed batch was written"
    assert proc.processed == 40
