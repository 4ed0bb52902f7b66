"""The API's KPI-history reads (comparisons, the previous period of a ranking, the board's yesterday),
in a thread pool of their own, bounded, and shared between identical requests.

    reads = HistoryReads(workers=2, waiting=8)
    value = await reads.run(("rank", kind, kpi, window, minute), lambda: store.merged_many(...), timeout_s=3)

- A read runs on one of `workers` threads, never on the default pool that acknowledgements, key
  refreshes and the board's database snapshots use: a flood of 24 h rankings fills this pool only.
- At most `workers + waiting` reads are in hand (running or queued). Beyond that a read is refused at
  once (`Busy`): the caller answers with its live figures and says why, as it does when the database
  is down. A read that times out still holds its thread until it ends, and still counts.
- Reads with the same key while one is in hand share its answer. A read run with `keep=True` also
  keeps its answer `keep_s` for the next ones with that key (the `MAX_KEPT` newest): 40 screens asking
  for the same 24 h ranking in the same minute cost one query. The caller puts the minute in the key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

T = TypeVar("T")
MAX_KEPT = 64  # answers kept (by count; the oldest go first)


class Busy(Exception):
    """Too many history reads in hand: try again later."""


class HistoryReads:
    def __init__(self, workers: int = 2, waiting: int = 8, keep_s: float = 30.0) -> None:
        self.workers = workers
        self.waiting = waiting
        self.keep_s = keep_s
        self._kept: dict[Hashable, tuple[float, Any]] = {}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sqm-history")
        self._in_hand: dict[Hashable, asyncio.Future[Any]] = {}
        self.refused = 0
        self.shared = 0

    @property
    def in_hand(self) -> int:
        return len(self._in_hand)

    async def run(self, key: Hashable, read: Callable[[], T], timeout_s: float, *, keep: bool = False) -> T:
        """`read()` on the pool (or the answer of the same read in hand, or, with `keep`, one kept);
        TimeoutError after `timeout_s`, `Busy` at once when the pool has `workers + waiting` reads in hand."""
        kept = self._kept.get(key) if keep else None
        if kept is not None and time.monotonic() - kept[0] < self.keep_s:
            self.shared += 1
            return cast(T, kept[1])
        fut = self._in_hand.get(key)
        if fut is not None:
            self.shared += 1
        else:
            if len(self._in_hand) >= self.workers + self.waiting:
                self.refused += 1
                raise Busy(f"the KPI history has {len(self._in_hand)} reads in hand")
            fut = asyncio.get_running_loop().run_in_executor(self._pool, read)
            self._in_hand[key] = fut
            fut.add_done_callback(lambda f: self._done(key, f))
        result: T = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        if keep:
            self._kept[key] = (time.monotonic(), result)
            if len(self._kept) > MAX_KEPT:
                for k in sorted(self._kept, key=lambda k: self._kept[k][0])[:len(self._kept) - MAX_KEPT // 2]:
                    del self._kept[k]
        return result

    def _done(self, key: Hashable, fut: asyncio.Future[Any]) -> None:
        self._in_hand.pop(key, None)
        if not fut.cancelled():
            fut.exception()  # retrieved: a read every waiter gave up on is not logged as never retrieved

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
