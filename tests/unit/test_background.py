"""The feeds' shared background loop: it starts over after a failure and stops when told."""

from __future__ import annotations

import asyncio

from edge.background import BackgroundLoop


class Flaky(BackgroundLoop):
    name = "flaky"
    retry_s = 0.01

    def __init__(self) -> None:
        self.runs = 0
        self.resets = 0
        self.serving = asyncio.Event()

    async def run_once(self) -> None:
        self.runs += 1
        if self.runs < 3:
            raise ConnectionError("broker gone")
        self.serving.set()
        await asyncio.sleep(3600)

    def on_failure(self) -> None:
        self.resets += 1


async def test_starts_over_after_failures_then_stops() -> None:
    loop = Flaky()
    await loop.start()
    await asyncio.wait_for(loop.serving.wait(), 5)
    assert (loop.runs, loop.resets) == (3, 2)
    await loop.stop()
    assert loop._task is not None and loop._task.cancelled()


async def test_stop_before_start_is_harmless() -> None:
    await Flaky().stop()
