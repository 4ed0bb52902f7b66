"""GET /v1/kpis (with `compare`), /v1/scopes, /v1/kpis/history and /v1/rankings.

Live figures come from the view, never from a database. The history (comparisons, charts, the
previous period of a 24 h ranking) is read in a thread, so the event loop never waits for SQL. When
the history cannot be read (the database is down), `/v1/kpis` and `/v1/rankings` still answer with
the live figures, leave the comparison out and say why in `compare_error`; `/v1/kpis/history`,
which is nothing but the history, answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field

from api import rankings
from api.deps import (
    DATABASE_DOWN,
    HistoryReadsDep,
    KpiHistoryDep,
    MaybeKpiHistoryDep,
    ReadAuthenticated,
    TargetsDep,
    ViewDep,
    require_scope,
)
from api.history_reads import Busy, HistoryReads
from api.kpi_targets import Targets
from api.schemas import (
    HistoryPoint,
    HistoryResponse,
    KpisResponse,
    KpiValue,
    Ranked,
    RankingsResponse,
    ScopesResponse,
    Window,
)
from api.snapshots import Throttle, reason
from history.series import COMPARE_SHIFT_S, parse_step
from history.store import HistoryStore
from stream.clock import aware, rfc3339
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, Kpi, achievement, change, compute
from stream.scopes import kind_of
from stream.view import View
from stream.windows import LONGEST, WINDOWS

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[ReadAuthenticated])
# Handlers are `async def` on purpose: they then run on the event loop, like the feed that updates
# the view, and never see it half-updated (a sync handler would run in a thread pool).
Compare = Literal["yesterday", "last_week"]
MAX_POINTS = 1500
RANK_CHUNK = 200  # scopes measured between two turns of the event loop
HISTORY_WAIT_S = 3.0  # the longest a comparison waits for the history before answering without it
T = TypeVar("T")
log = logging.getLogger(__name__)
log_down = Throttle()
COMPARE_ERROR = ("with `compare` (or the previous period of a 24 h ranking): why the comparison is missing "
                 "(the KPI history could not be read); the live figures are current")


class KpisOut(KpisResponse):
    compare_error: str | None = Field(None, description=COMPARE_ERROR)


class RankingsOut(RankingsResponse):
    compare_error: str | None = Field(None, description=COMPARE_ERROR)


async def from_history(history: HistoryStore | None, reads: HistoryReads, key: Hashable,
                       read: Callable[[HistoryStore], T], *, keep: bool = False) -> T | str:
    """`read(history)` on the history's own pool (api/history_reads.py; identical `key`s share one read),
    or why it could not be done (no database, a database error, too many reads in hand, or no answer
    within HISTORY_WAIT_S): a comparison is an extra that never costs the live figures."""
    if history is None:
        return "the KPI history is not available: the database is not connected"
    try:
        return await reads.run(key, lambda: read(history), HISTORY_WAIT_S, keep=keep)
    except TimeoutError:
        return f"the KPI history did not answer within {HISTORY_WAIT_S:.0f} s"
    except Busy:
        return "the KPI history is busy (too many comparisons at once): try again in a few seconds"
    except DATABASE_DOWN as exc:
        if log_down():
            log.warning("comparisons left out: the KPI history cannot be read (%s)", reason(exc))
        return "the KPI history cannot be read: the database is unavailable"


def kpi_payload(view: View, targets: Targets, scope: str, window: str, now: float) -> dict[str, KpiValue]:
    out = {}
    for name, (value, count) in view.kpis(scope, window, now=now).items():
        target = targets.get(scope, name)
        out[name] = KpiValue(value=value, count=count, target=target,
                             achievement=achievement(name, value, target) if target is not None else None)
    return out


def history_window(store: HistoryStore, scope: str, window: str, now: float, shift_s: int) -> dict[str, Kpi]:
    """Every windowed KPI of the same window `shift_s` earlier, from the minute history (the same
    minute buckets the live window covers); empty when the history holds nothing for that time (no
    history is not "nothing happened")."""
    acc, rows = store.window_before(scope, WINDOWS[window], now, shift_s)
    return compute(acc) if rows else {}


@router.get("/kpis", response_model=KpisOut, response_model_exclude_unset=True,
            responses={404: {"description": "unknown scope"}})
async def get_kpis(view: ViewDep, targets: TargetsDep, history: MaybeKpiHistoryDep, reads: HistoryReadsDep,
                   scope: str = Query("all", max_length=140), window: Window = "1h",
                   compare: Compare | None = Query(None, description="add `previous` and `change`: the same "
                                                   "window one day / one week earlier")) -> KpisOut:
    """Every KPI of docs/kpis.md for one scope and window, with its denominator (`count`)."""
    now = time.time()
    require_scope(view, scope, now=now)
    out = KpisOut(scope=scope, window=window, as_of=rfc3339(now), kpis=kpi_payload(view, targets, scope, window, now))
    if compare is not None:
        shift = COMPARE_SHIFT_S[compare]
        before = await from_history(history, reads, ("compare", scope, window, compare, int(now // 60)),
                                    lambda h: history_window(h, scope, window, now, shift))
        if isinstance(before, str):
            out.compare_error = before
            return out
        for name, k in out.kpis.items():
            prev, n = before.get(name, (None, None))
            k.previous, k.previous_count, k.change = prev, n, change(k.value, prev)
    return out


@router.get("/scopes", response_model=ScopesResponse)
async def get_scopes(view: ViewDep, kind: str | None = None) -> ScopesResponse:
    """The scopes that have data (in the last 24 h, or open tickets); `kind` filters (team, agent, ...)."""
    scopes = view.scopes(now=time.time())
    if kind:
        scopes = [s for s in scopes if kind_of(s) == kind]
    return ScopesResponse(scopes=scopes)


@router.get("/kpis/history", response_model=HistoryResponse, responses={422: {"description": "bad range"}})
async def get_history(history: KpiHistoryDep, kpi: str, scope: str = Query("all", max_length=140),
                      start: datetime | None = Query(None, alias="from", description="RFC 3339; default to - 24 h"),
                      end: datetime | None = Query(None, alias="to", description="RFC 3339; default now"),
                      step: str = Query("1h", description="1m, 5m, 15m, 1h, 1d ...")) -> HistoryResponse:
    """One KPI of one scope over a range, per step: each point is computed from the merged accumulators
    of its step (exact ratios, never an average of ratios). Minute rows older than the minute
    retention are kept per hour: a step shorter than an hour sees them as whole hours."""
    if kpi not in KPI_BY_NAME:
        raise HTTPException(422, f"{kpi!r} has no history (live-state KPIs have none)" if kpi in LIVE_BY_NAME
                            else f"unknown KPI {kpi!r}")
    try:
        step_s = parse_step(step)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    t1 = aware(end).timestamp() if end else time.time()  # a time without an offset is UTC
    t0 = aware(start).timestamp() if start else t1 - LONGEST
    if t1 <= t0 or (t1 - t0) / step_s > MAX_POINTS:
        raise HTTPException(422, f"`from` must be before `to`, with at most {MAX_POINTS} steps between")
    series = await asyncio.to_thread(history.series, scope, int(t0), int(t1), step_s)
    fn = KPI_BY_NAME[kpi].compute
    return HistoryResponse(scope=scope, kpi=kpi, step=step, points=[
        HistoryPoint(t=rfc3339(t), value=v, count=n) for t, (v, n) in ((t, fn(acc)) for t, acc in series)])


@router.get("/rankings", response_model=RankingsOut, response_model_exclude_unset=True,
            responses={422: {"description": "unknown KPI"}})
async def get_rankings(request: Request, view: ViewDep, targets: TargetsDep, history: MaybeKpiHistoryDep,
                       reads: HistoryReadsDep,
                       kind: Literal["team", "agent", "queue", "channel", "tier"] = "team",
                       kpi: str = "csat", window: Window = "1h",
                       min_count: int = Query(1, ge=0, description="leave out scopes with fewer samples"),
                       limit: int = Query(100, ge=1, le=1000)) -> RankingsOut:
    """Every scope of a kind ranked on one KPI, best first, with target, achievement and the change
    since the previous period (the same window just before this one). A 24 h previous period comes
    from the KPI history for the first rows only (at most 60,000 scope-minutes a request: the first
    41 rows); the others answer `previous: null`."""
    now = time.time()
    live = LIVE_BY_NAME.get(kpi)
    if kpi not in KPI_BY_NAME and live is None:
        raise HTTPException(422, f"unknown KPI {kpi!r}")
    if live is not None and kind not in live.kinds:
        raise HTTPException(422, f"{kpi} is not kept for {kind} scopes")
    found = await _measured(view, request.app.state.measures, kind, kpi, window, now)
    rows = rankings.ordered(found, kpi, targets=targets, min_count=min_count, limit=limit)
    why = None
    if live is None and rows:
        if not rankings.previous_needs_history(window):
            rows = rankings.with_previous(rows, rankings.previous_from_view(view, [r.scope for r in rows], kpi,
                                                                            window, now))
        else:
            scopes = rankings.history_scopes(rows, window)
            t0, t1 = rankings.previous_span(now, window)
            fn = KPI_BY_NAME[kpi].compute
            before = await from_history(history, reads, ("previous", tuple(scopes), t0, t1),
                                        lambda h: h.merged_many(scopes, t0, t1), keep=True)
            if isinstance(before, str):
                why = before
            else:
                rows = rankings.with_previous(rows, {s: fn(acc)[0] for s, (acc, n) in before.items() if n})
    out = RankingsOut(kind=kind, kpi=kpi, window=window, as_of=rfc3339(now), rankings=[
        Ranked(scope=r.scope, name=r.name, value=r.value, count=r.count, target=r.target, achievement=r.achievement,
               rank=r.rank, previous=r.previous, change=r.change) for r in rows])
    if why is not None:
        out.compare_error = why
    return out


async def _measured(view: View, measures: rankings.Measures, kind: str, kpi: str, window: str,
                    now: float) -> list[rankings.Measured]:
    """Every scope's KPI for a ranking, measured RANK_CHUNK scopes at a time with the event loop let go
    in between (2,000 agents' 24 h windows take about 45 ms: forty rankings at once must not hold up
    a /healthz or a board push), and kept a second for the next ranking of the same kind, KPI and
    window (`measures`, the app's). A ranking may so mix two successive states of the view, a second
    apart at most."""
    key = (kind, kpi, window)
    found = measures.get(key, now)
    if found is not None:
        return found
    scopes = rankings.scopes_of_kind(view, kind, now)
    found = []
    for i in range(0, len(scopes), RANK_CHUNK):
        found.extend(rankings.measure(view, scopes[i:i + RANK_CHUNK], kpi, window, now))
        await asyncio.sleep(0)
    measures.put(key, now, found)
    return found
