"""Database reads the API serves from memory: a snapshot refreshed in a thread, in the background.

    targets = PeriodicSnapshot("targets", book.snapshot, every_s=30)
    await targets.start(); targets.value; await targets.refresh()   # after a write

Routes read `value` and never wait for the database. While the database is down a read fails and
the last value stays (`loaded` says whether there has been one): the outage is logged once when
it starts and once when a read succeeds again, not at every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from edge.background import BackgroundLoop

T = TypeVar("T")
log = logging.getLogger(__name__)


def reason(exc: BaseException) -> str:
    """The first line of an error, for a log line (SQLAlchemy's messages run over several)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


class Throttle:
    """True at most once per `every_s`: for a log line that every request of an outage would repeat."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last = -every_s

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


class PeriodicSnapshot(BackgroundLoop, Generic[T]):
    def __init__(self, name: str, read: Callable[[], T], initial: T, every_s: float = 30.0, *,
                 loaded: bool = False) -> None:
        self.name = f"{name} snapshot"
        self.read = read
        self.value = initial
        self.loaded = loaded
        self.every_s = every_s
        self.retry_s = every_s
        self.failing_since: float | None = None

    async def refresh(self) -> T:
        self.value = await asyncio.to_thread(self.read)
        self.loaded = True
        return self.value

    async def run_once(self) -> None:
        while True:
            try:
                await self.refresh()
                if self.failing_since is not None:
                    log.info("%s read again after %.0f s", self.name, time.time() - self.failing_since)
                    self.failing_since = None
            except SQLAlchemyError as exc:
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.warning("%s not read (%s); keeping the last one, trying again every %.0f s", self.name,
                                reason(exc), self.every_s)
            await asyncio.sleep(self.every_s)
