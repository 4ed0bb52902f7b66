"""Rolling event-time windows over fixed buckets. No I/O, no clock: `now` is always passed in.

An event at time `ts` goes to the bucket starting at `floor(ts / B) * B`. Window W at `now` is the
set of buckets that overlap `(now - W, now]`: the oldest bucket may hold up to B seconds of events
just older than the window, so the boundary error is at most one bucket (B = 60 s by default,
as kpis.md allows).

    >>> bucket_of(125.0, 60)
    120
    >>> list(buckets_in(300, now=610.0, size=60))
    [300, 360, 420, 480, 540, 600]
"""

from __future__ import annotations

import math
from collections.abc import Iterator

WINDOWS: dict[str, int] = {"5m": 300, "15m": 900, "1h": 3600, "24h": 86400}
LONGEST = max(WINDOWS.values())
DEFAULT_BUCKET_S = 60


def bucket_of(ts: float, size: int) -> int:
    return int(math.floor(ts / size)) * size


def window_start_bucket(window_s: int, *, now: float, size: int) -> int:
    """Oldest bucket that overlaps (now - W, now]."""
    return bucket_of(now - window_s, size)


def buckets_in(window_s: int, *, now: float, size: int) -> Iterator[int]:
    return iter(range(window_start_bucket(window_s, now=now, size=size), bucket_of(now, size) + 1, size))


def is_late(ts: float, *, now: float) -> bool:
    """Older than the longest window: not counted, counted as late instead."""
    return ts <= now - LONGEST
