"""Rankings and the previous period: one pure module for `GET /v1/rankings` and the board.

    rows = rank(view, "agent", "csat", "1h", now, targets=targets, min_count=5, limit=8)
    need = previous_needs_history("24h")                       # True: read it from the KPI history
    span = previous_span(now, "24h")                           # the minutes [start, end) to read
    rows = with_previous(rows, previous)                       # previous and change per row

Only the rows shown get a previous period: a ranking of 2,000 agents limited to 100 reads the history
of 100 scopes. And at most `MAX_HISTORY_CELLS` scope-minutes per request (`history_scopes`): a 24 h
previous period of 1,440 minutes covers the first 41 rows, the rest answer `previous: null`
(measured: 150,000 minute rows took 2.8 s to read and merge on SQLite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from history.series import MINUTE, floor, previous_window
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, achievement, change, ranks
from stream.scopes import kind_of, name_of
from stream.view import View
from stream.windows import LONGEST, WINDOWS


class Targets(Protocol):  # api/targets.Targets, without its database side
    def get(self, scope: str, kpi: str) -> float | None: ...


MAX_HISTORY_CELLS = 60_000  # scope x minute rows one request may read from the KPI history (about 1 s)


@dataclass(frozen=True, slots=True)
class Ranking:
    scope: str
    name: str
    value: float | None
    count: int
    rank: int  # 1 = best; ties share a rank
    target: float | None
    achievement: float | None
    previous: float | None = None
    change: float | None = None


def higher_is_better(kpi: str) -> bool:
    return KPI_BY_NAME[kpi].higher_is_better if kpi in KPI_BY_NAME else False  # live KPIs: counts of trouble


Measured = tuple[str, float | None, int]  # scope, value, count


class Measures:
    """The measures of the latest rankings, by (kind, KPI, window), each served for `keep_s` to the next
    ranking of the same three; at most `max_kept` (the oldest go). Pure: the caller passes `now`."""

    def __init__(self, keep_s: float = 1.0, max_kept: int = 256) -> None:
        self.keep_s = keep_s
        self.max_kept = max_kept
        self._kept: dict[tuple[str, str, str], tuple[float, list[Measured]]] = {}

    def get(self, key: tuple[str, str, str], now: float) -> list[Measured] | None:
        kept = self._kept.get(key)
        return kept[1] if kept is not None and now - kept[0] < self.keep_s else None

    def put(self, key: tuple[str, str, str], now: float, found: list[Measured]) -> None:
        self._kept[key] = (now, found)
        if len(self._kept) > self.max_kept:
            for k in sorted(self._kept, key=lambda k: self._kept[k][0])[:len(self._kept) - self.max_kept // 2]:
                del self._kept[k]


def measure(view: View, scopes: Sequence[str], kpi: str, window: str, now: float) -> list[Measured]:
    """The KPI of each scope (a live-state KPI as it is now, else over the window)."""
    if kpi in LIVE_BY_NAME:
        return [(s, *view.live_kpis(s, now=now)[kpi]) for s in scopes]
    fn = KPI_BY_NAME[kpi].compute
    return [(s, *fn(view.window_acc(s, window, now=now))) for s in scopes]


def ordered(found: Sequence[Measured], kpi: str, *, targets: Targets, min_count: int, limit: int) -> list[Ranking]:
    """The scopes with at least `min_count` samples, ranked (best first), the first `limit`, with target
    and achievement."""
    kept = [m for m in found if m[2] >= min_count]
    order = ranks([v for _, v, _ in kept], higher_is_better=higher_is_better(kpi))
    out = []
    for r, (s, value, count) in sorted(zip(order, kept, strict=True), key=lambda x: (x[0], x[1][0]))[:limit]:
        target = targets.get(s, kpi)
        out.append(Ranking(s, name_of(s), value, count, r, target,
                           achievement(kpi, value, target) if target is not None else None))
    return out


def scopes_of_kind(view: View, kind: str, now: float) -> list[str]:
    return [s for s in view.scopes(now=now) if kind_of(s) == kind]


def rank(view: View, kind: str, kpi: str, window: str, now: float, *, targets: Targets, min_count: int,
         limit: int) -> list[Ranking]:
    """Every scope of `kind` ranked on `kpi` (`measure`, then `ordered`)."""
    return ordered(measure(view, scopes_of_kind(view, kind, now), kpi, window, now), kpi, targets=targets,
                   min_count=min_count, limit=limit)


def previous_needs_history(window: str) -> bool:
    """The window just before this one is older than the view's 24 h: only the history has it."""
    return 2 * WINDOWS[window] > LONGEST


def previous_span(now: float, window: str) -> tuple[int, int]:
    """The minute rows [start, end) of the window just before the current one (as the live window's)."""
    w = WINDOWS[window]
    start, end = previous_window(now, w, w)
    return floor(start, MINUTE), floor(end, MINUTE) + MINUTE


def history_scopes(rows: Sequence[Ranking], window: str) -> list[str]:
    """The scopes whose previous period one request reads: the first rows, within MAX_HISTORY_CELLS."""
    minutes = max(1, WINDOWS[window] // MINUTE)
    return [r.scope for r in rows[:max(1, MAX_HISTORY_CELLS // minutes)]]


def previous_from_view(view: View, scopes: Sequence[str], kpi: str, window: str, now: float) -> dict[str, float | None]:
    """The previous period from the view (both windows within its 24 h)."""
    w = WINDOWS[window]
    start, end = previous_window(now, w, w)
    b = view.bucket_s
    fn = KPI_BY_NAME[kpi].compute
    return {s: fn(view.range_acc(s, floor(start, b), floor(end, b), now=now))[0] for s in scopes}


def with_previous(rows: Sequence[Ranking], previous: Mapping[str, float | None]) -> list[Ranking]:
    return [replace(r, previous=p, change=change(r.value, p)) if (p := previous.get(r.scope)) is not None else r
            for r in rows]
