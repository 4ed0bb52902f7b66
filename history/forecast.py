"""Forecast of counts per quarter hour (docs/workforce.md "Forecast"). Pure: counts in, intervals out.

The method was chosen by measurement (`make bench`, bench/forecast.py) on history with daily and
weekly seasons and Poisson noise, against seasonal naive and statsmodels' Holt-Winters:

- **profile** (4 weeks or more of history down to 1): the mean of the same quarter hour over the last
  up to four weeks, scaled by the level of the last four hours against the same hours of those weeks.
  The level ratio is shrunk towards 1 by a prior of `PRIOR` counts, so that a quiet queue's noise
  does not swing it while a busy queue's real shift (an incident, growth) does.
- **daily** (history of 1 to 7 days): the same, over the last days instead of weeks (no weekly season).
- **flat** (less than a day): the mean of the last four hours.

The band is an 80 % prediction interval: `expected ± z·sqrt(expected)`, with z the 10th and 90th
percentiles of the method's own Pearson residuals `(actual − expected) / sqrt(expected)` over its
backtests on the last day (Poisson counts would give ±1.28; extra variance widens it).

    >>> week = [10.0 * (1 + (i % 96 >= 48)) for i in range(7 * 96)]       # quiet nights, busy days
    >>> f = forecast(week * 2, steps=2)
    >>> (f.method, [round(p.expected, 1) for p in f.points])
    ('profile', [10.0, 10.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STEP = 900  # seconds per interval (UTC quarter hours)
DAY = 96  # intervals
WEEK = 7 * DAY
HORIZON = 8  # intervals ahead: two hours
WEEKS = 4  # seasons averaged at most
LEVEL = 16  # intervals of recent level (four hours)
PRIOR = 40.0  # counts that shrink the level ratio towards 1
BACKTESTS = DAY  # past origins whose errors make the band


@dataclass(frozen=True, slots=True)
class Point:
    expected: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Forecast:
    method: str
    points: list[Point]
    z: tuple[float, float]  # the band's percentiles of the Pearson residuals


def _period(n: int) -> tuple[str, int] | None:
    if n >= WEEK + LEVEL:
        return "profile", WEEK
    if n >= DAY + LEVEL:
        return "daily", DAY
    return None


def expected(y: np.ndarray, steps: int) -> tuple[str, np.ndarray]:
    """The point forecast of the `steps` intervals after `y` (counts per interval, oldest first)."""
    n = len(y)
    found = _period(n)
    if found is None:
        level = float(y[-LEVEL:].mean()) if n else 0.0
        return "flat", np.full(steps, level)
    method, p = found
    k = min(WEEKS, (n - LEVEL) // p)
    ahead = np.zeros(steps)
    recent_then = 0.0
    for j in range(1, k + 1):
        for i in range(steps):  # the same interval j seasons ago (or j seasons before that, past one season)
            back = n - j * p + i
            while back >= n:
                back -= p
            ahead[i] += y[back]
        recent_then += float(y[n - j * p - LEVEL:n - j * p].sum())
    ahead /= k
    ratio = (float(y[-LEVEL:].sum()) + PRIOR) / (recent_then / k + PRIOR)
    return method, ahead * ratio


def forecast(y: list[float] | np.ndarray, steps: int = HORIZON) -> Forecast:
    """Point forecast and 80 % band of the `steps` intervals after the history `y`."""
    arr = np.asarray(y, dtype=float)
    method, point = expected(arr, steps)
    z = _band(arr, steps)
    return Forecast(method, [banded(float(e), z) for e in point], z)


def banded(e: float, z: tuple[float, float]) -> Point:
    """A point with its band: `e + z·sqrt(e)` for the two percentiles of z (never below 0)."""
    r = math.sqrt(max(e, 1.0))
    return Point(e, max(0.0, e + z[0] * r), e + z[1] * r)


def _band(y: np.ndarray, steps: int) -> tuple[float, float]:
    """The 10th and 90th percentiles of the Pearson residuals of backtests from the last day's origins
    (every fourth one); Poisson's ±1.2816 while there are too few."""
    z: list[float] = []
    n = len(y)
    for origin in range(max(LEVEL, n - BACKTESTS - steps), n - steps + 1, 4):
        _, e = expected(y[:origin], steps)
        a = y[origin:origin + steps]
        z.extend((a - e) / np.sqrt(np.maximum(e, 1.0)))
    if len(z) < 40:
        return -1.2816, 1.2816
    lo, hi = np.percentile(z, [10, 90])
    return min(float(lo), -1.2816), max(float(hi), 1.2816)


def wape(actual: list[float], predicted: list[float]) -> float | None:
    """Weighted absolute percentage error: Σ|a − f| / Σa (None without actuals)."""
    total = sum(actual)
    return sum(abs(a - f) for a, f in zip(actual, predicted, strict=True)) / total if total else None


# -- what the API serves and the board shows (api/forecasts.py makes them) -----------------------
@dataclass(frozen=True, slots=True)
class Interval:
    start: int
    expected: float | None
    low: float | None
    high: float | None
    actual: float | None  # None for the future; the current interval: so far
    required_agents: int | None


@dataclass(frozen=True, slots=True)
class ScopeForecast:
    scope: str
    kpi: str
    made: float
    method: str
    intervals: list[Interval]  # the last 24 h, the current one, then the next 8
    wape_24h: float | None
