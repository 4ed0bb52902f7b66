"""Time arithmetic of the KPI history: resolutions, steps, comparison windows. Pure: no I/O, no clock.

Rows are minute (`m`) or hour (`h`) accumulators. A range query merges, per step, the rows whose start
falls in the step; a ratio is computed from that merged accumulator, never averaged. Where only hour
rows are left (older than the minute retention), a step shorter than an hour sees whole hours: the
row lands in the step that holds its start.

    >>> parse_step("15m"), parse_step("1d")
    (900, 86400)
    >>> steps(0, 7200, 3600)
    [0, 3600]
    >>> previous_window(1000.0, 300, 86400)
    (-85700.0, -85400.0)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.folds import Acc

HistoryRow = tuple[str, str, int, "Acc"]  # one row of the KPI history: resolution ("m", "h"), scope, start, accumulator

MINUTE, HOUR = 60, 3600
COMPARE_SHIFT_S = {"yesterday": 86400, "last_week": 7 * 86400}
_STEP = re.compile(r"^(\d+)(m|h|d)$")
_UNIT = {"m": 60, "h": 3600, "d": 86400}


def parse_step(step: str) -> int:
    """'1m', '5m', '15m', '1h', '1d' ... -> seconds (a whole number of minutes)."""
    m = _STEP.match(step)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"not a step: {step!r} (use e.g. 1m, 5m, 15m, 1h, 1d)")
    return int(m.group(1)) * _UNIT[m.group(2)]


def floor(ts: float, size: int) -> int:
    return int(ts // size) * size


def steps(start: int, end: int, step: int) -> list[int]:
    """Step starts covering [start, end), aligned to the step (UTC)."""
    return list(range(floor(start, step), end, step))


def previous_window(now: float, window_s: int, shift_s: int) -> tuple[float, float]:
    """(start, end] of the window `window_s` that ended `shift_s` before `now`."""
    return now - shift_s - window_s, now - shift_s


def minute_rows_to_keep(now: float, minute_days: float, longest_window_s: int) -> int:
    """Minute rows older than this are rolled up to hours. One longest window and an hour are kept
    beyond `minute_days`, so that a `last_week` comparison of every window still reads minutes."""
    return floor(now - minute_days * 86400 - longest_window_s - HOUR, HOUR)
