"""A background task that runs until stopped and starts over after a failure (the feeds' I/O loops).

    class Feed(BackgroundLoop):
        name = "state feed"
        async def run_once(self) -> None: ...   # connect, then read until something breaks

    await feed.start(); ...; await feed.stop()
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class BackgroundLoop(abc.ABC):
    name = "background task"
    retry_s = 1.0
    _task: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def run_once(self) -> None:
        """Do the work until it fails (or forever); raising starts it over after `retry_s`."""

    def on_failure(self) -> None:  # noqa: B027 - an optional hook: nothing to reset by default
        """Reset what `run_once` left half done, before it starts over."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; starting over in %.0f s", self.name, self.retry_s)
                self.on_failure()
                await asyncio.sleep(self.retry_s)
