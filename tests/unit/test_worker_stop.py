"""A stopping worker never acknowledges a batch whose state is not written (services/worker_app.BatchGuard).

Faust acknowledges a `take_events` batch when the agent's body returns or raises, and commits on stop:
the step must end the process (here: a `die` that raises) instead of letting a cancelled write return.
The same against the real broker, frozen, with SIGTERM: tests/integration/test_broker_outage.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.loadgen import random_stream
from services.worker_app import BatchGuard
from stream.folds import KpiConfig
from stream.processor import Message, Processor
from stream.state import DeadLetter, Record, Scoped
from tests.support.fakes import MemorySink
from tests.support.pipeline import to_messages


class Died(Exception):
    pass


def die(why: str) -> None:
    raise Died(why)


class DownSink(MemorySink):
    """The broker unreachable: every write fails until `up` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = asyncio.Event()
        self.attempts = 0

    async def write(self, records: Sequence[tuple[int, Record]],
                    dead: Sequence[tuple[DeadLetter, bytes | None]], scoped: Sequence[Scoped] = ()) -> None:
        self.attempts += 1
        if not self.up.is_set():
            await asyncio.sleep(0.01)
            raise ConnectionError("broker unreachable")
        await super().write(records, dead, scoped)


def _batch() -> list[Message]:
    return to_messages(random_stream(40, 1_700_000_000, seed=3))


async def _stop_while_writing(sink: DownSink, grace_s: float, release_after: float | None) -> asyncio.Task[None]:
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    agent = asyncio.ensure_future(BatchGuard(die, grace_s).run(proc.process(_batch(), now=1_700_000_100)))
    while sink.attempts < 2:  # the write is retrying
        await asyncio.sleep(0.01)
    agent.cancel()  # Faust stopping the agent (SIGTERM)
    if release_after is not None:
        await asyncio.sleep(release_after)
        sink.up.set()
    await asyncio.wait({agent})
    return agent


def test_a_stop_during_an_outage_ends_the_process_without_acknowledging() -> None:
    sink = DownSink()
    agent = asyncio.run(_stop_while_writing(sink, grace_s=0.2, release_after=None))
    with pytest.raises(Died, match="not on the broker"):
        agent.result()
    assert sink.all_records() == []


def test_a_stop_whose_write_finishes_within_the_grace_stays_graceful() -> None:
    sink = DownSink()
    agent = asyncio.run(_stop_while_writing(sink, grace_s=5.0, release_after=0.05))
    assert agent.cancelled()  # the stop goes on as Faust asked: the batch is written, its ack is right
    assert sink.all_records(), "the batch's state was written before the stop went on"


def test_a_batch_step_that_gives_up_ends_the_process() -> None:
    class Broken(MemorySink):
        async def read_partition(self, partition: int) -> list[Record]:
            raise RuntimeError("a bug that fails every time")

    async def main() -> None:
        proc = Processor(Broken(), KpiConfig(), 60, 7 * 86400)
        await BatchGuard(die).run(proc.process(_batch(), now=1_700_000_100))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("stream.processor.BATCH_ATTEMPTS", 1)  # gives up at once (the retries: test_faults.py)
        with pytest.raises(Died, match="keeps failing"):
            asyncio.run(main())


def test_the_stop_of_the_store_waits_for_the_batch_in_hand_and_ends_the_process_if_it_stays_unwritten() -> None:
    """Faust stops the app's services (the state store) before it cancels the agent: `settle` first."""
    async def main(release: bool) -> DownSink:
        sink = DownSink()
        guard = BatchGuard(die, grace_s=3.0 if release else 0.3)  # the write retries after 0.2, 0.4... s
        proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
        agent = asyncio.ensure_future(guard.run(proc.process(_batch(), now=1_700_000_100)))
        while sink.attempts < 2:
            await asyncio.sleep(0.01)
        if release:
            asyncio.get_running_loop().call_later(0.05, sink.up.set)
        await guard.settle()
        await agent
        return sink

    with pytest.raises(Died, match="not on the broker"):
        asyncio.run(main(release=False))
    assert asyncio.run(main(release=True)).all_records()
