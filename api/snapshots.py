"""Database reads the API serves from memory: a snapshot refreshed in a thread, in the background.

    targets = PeriodicSnapshot("targets", book.snapshot, every_s=30)
    await targets.start(); targets.value; await targets.refresh()   # after a write

Routes read `value` and never wait for the database; a failed read keeps the last value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from stream.background import BackgroundLoop

T = TypeVar("T")


class PeriodicSnapshot(BackgroundLoop, Generic[T]):
    def __init__(self, name: str, read: Callable[[], T], initial: T, every_s: float = 30.0) -> None:
        self.name = f"{name} snapshot"
        self.read = read
        self.value = initial
        self.every_s = every_s
        self.retry_s = every_s

    async def refresh(self) -> T:
        self.value = await asyncio.to_thread(self.read)
        return self.value

    async def run_once(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.every_s)
