"""The forecaster inside the API (docs/workforce.md "Forecast"): every minute, per `all`, `team:` and
`queue:` scope, the calls and tickets of the next two hours per quarter hour, from the KPI history
(older than 24 h) and the live view (the last 24 h, exact). I/O edge around history/forecast.py.

What it makes is served by GET /v1/forecast and the board, and published as a `["f", scope, kpi]`
record to the state and scope topics, so that every view (the alert workers' included) has the next
interval's expectation: the `*_next` KPIs and the rules on them (stream/view.py `next_interval`).

Past intervals are listed with the forecast the method made for them one interval ahead, recomputed
from the same history (the forecaster ran at least once in every interval before it began), so
forecast error is visible from the first start, and after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from edge.background import BackgroundLoop
from history.forecast import (
    BACKTESTS,
    HORIZON,
    LEVEL,
    STEP,
    WEEK,
    WEEKS,
    Interval,
    ScopeForecast,
    banded,
    expected,
    forecast,
    wape,
)
from history.store import HistoryStore
from stream.folds import IX
from stream.records import ForecastKey, ForecastValue, Record, encode_key
from stream.scopes import kind_of
from stream.view import View
from stream.windows import LONGEST

log = logging.getLogger(__name__)

EVERY_S = 60.0
HISTORY_EVERY_S = 3600  # the history is read again per scope this often (the view has the newer part)
#: the KPIs forecast, and the accumulator counter each counts (stream.folds)
FORECAST_KPIS = {"calls_offered": "offered", "tickets_created": "created"}
KINDS = ("all", "team", "queue")
SPAN = WEEKS * WEEK + LEVEL + BACKTESTS  # intervals of history read: four weeks before the last day's origins


def kpis_of(scope: str) -> tuple[str, ...]:
    """Queues carry calls only (tickets have no queue)."""
    return ("calls_offered",) if kind_of(scope) == "queue" else tuple(FORECAST_KPIS)


def build(scope: str, kpi: str, y: np.ndarray, current: float, cur: int, now: float,
          need: Callable[[float], int] | None) -> ScopeForecast:
    """The forecast of one scope's KPI from `y` (complete intervals up to the current one, which starts
    at `cur` and has `current` so far)."""
    ahead = forecast(y, HORIZON + 1)  # the current interval, then the next 8
    out: list[Interval] = []
    past_a: list[float] = []
    past_f: list[float] = []
    for back in range(BACKTESTS, 0, -1):  # the last 24 h: each with the forecast made one interval before
        origin = len(y) - back
        if origin < LEVEL:
            continue
        e = float(expected(y[:origin], 1)[1][0])
        p, a = banded(e, ahead.z), float(y[origin])
        out.append(Interval(cur - back * STEP, e, p.low, p.high, a, need(e) if need else None))
        past_a.append(a)
        past_f.append(e)
    for i, p in enumerate(ahead.points):
        out.append(Interval(cur + i * STEP, p.expected, p.low, p.high, current if i == 0 else None,
                            need(p.expected) if need else None))
    return ScopeForecast(scope, kpi, now, ahead.method, out, wape(past_a, past_f))


class Forecaster(BackgroundLoop):
    name = "forecaster"

    def __init__(self, view: View, publish: Callable[[list[Record]], Awaitable[None]] | None = None,
                 every_s: float = EVERY_S) -> None:
        self.view = view
        self.publish = publish
        self.every_s = every_s
        self.history: HistoryStore | None = None  # once the database is connected
        self.made: dict[tuple[str, str], ScopeForecast] = {}
        # scope -> (read at, quarter-hour counts before the last 24 h, minute counts of the last 24 h)
        self._stored: dict[str, tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
        self.last_run_s = 0.0  # seconds the last refresh took (all scopes)

    def connect(self, history: HistoryStore) -> None:
        self.history = history

    async def run_once(self) -> None:
        while True:
            if self.history is None or len(self.view.scopes(now=time.time())) < 2:
                await asyncio.sleep(2.0)  # the database is not connected, or the view has not loaded yet
                continue
            await self.refresh(time.time())
            await asyncio.sleep(self.every_s)

    async def refresh(self, now: float) -> None:
        t0 = time.perf_counter()
        records: list[Record] = []
        for scope in [s for s in self.view.scopes(now=now) if kind_of(s) in KINDS]:
            try:
                live = self.live_inputs(scope, now)  # on the event loop: the view is not shared with threads
                made = await asyncio.to_thread(self.make_from, scope, now, live)
            except Exception:
                log.exception("forecast of %s failed; the others go on", scope)
                continue
            for f in made:
                self.made[(scope, f.kpi)] = f
                ahead = f.intervals[-HORIZON - 1:]  # the current quarter hour and the next 8
                value = ForecastValue(now, ahead[0].start, [i.expected or 0.0 for i in ahead])
                records.append((encode_key(ForecastKey(scope, f.kpi)), value.to_bytes()))
        for k, v in records:
            self.view.apply(k, v)
        if self.publish is not None and records:
            await self.publish(records)
        self.last_run_s = time.perf_counter() - t0
        log.info("forecast of %d scope KPIs made in %.2f s", len(records), self.last_run_s)

    def live_inputs(self, scope: str, now: float) -> tuple[dict[str, np.ndarray], float | None]:
        """What the forecast takes from the view: the counts per minute of the last 24 h and the current
        quarter hour, per forecast field, and a queue's handle time."""
        cur = int(now // STEP) * STEP
        live_from = cur - int(LONGEST) + STEP  # the view holds the last 24 h exactly
        minutes = self.view.minute_accs(scope, live_from, (cur - live_from) // 60 + 15)
        seen = {f: np.array([m.v[IX[f]] for m in minutes]) for f in (FORECAST_KPIS[k] for k in kpis_of(scope))}
        handle = self.view.staffing(scope, now=now)[0].handle_time_s if kind_of(scope) == "queue" else None
        return seen, handle

    def make(self, scope: str, now: float) -> list[ScopeForecast]:
        """The forecasts of one scope (reads the view and the history in the calling thread)."""
        return self.make_from(scope, now, self.live_inputs(scope, now))

    def make_from(self, scope: str, now: float, live: tuple[dict[str, np.ndarray], float | None],
                  ) -> list[ScopeForecast]:
        """The forecasts of one scope from the view's minutes (`live_inputs`) and the history (this part
        runs in a thread: it reads the database, never the view)."""
        cur = int(now // STEP) * STEP
        live_from = cur - int(LONGEST) + STEP
        kpis = kpis_of(scope)
        fields = [FORECAST_KPIS[k] for k in kpis]
        older, minutes_stored = self._stored_counts(scope, fields, cur - SPAN * STEP, live_from, cur)
        seen_by, handle = live
        out = []
        for kpi, field in zip(kpis, fields, strict=True):
            # per minute of the last 24 h, the larger of the view (exact for what the stream saw) and
            # the history (which also holds what it did not: a backfill, minutes before the broker's
            # last restart); an interval where one ends and the other begins gets both halves
            seen = seen_by[field]
            n = len(minutes_stored[field])
            both = np.maximum(seen[:n], minutes_stored[field])
            recent = both[:n - n % 15].reshape(-1, 15).sum(axis=1)
            y = np.concatenate([older[field], recent])
            y = y[int(np.argmax(y > 0)):] if y.any() else y[:0]  # the history starts at its first count
            current = float(seen[n:].sum())
            need = (lambda e, h=handle: self.view.required_for(scope, e, h)) if handle is not None else None
            out.append(build(scope, kpi, y, current, cur, now, need))
        return out

    def _stored_counts(self, scope: str, fields: list[str], first: int, live_from: int, cur: int,
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The history's counts per quarter hour from `first` to `live_from` and per minute from there
        to `cur`, read from the database at most every HISTORY_EVERY_S per scope and moved along in
        between (the view has what is newer), or at each refresh while the scope has no history yet
        (a new install, or a backfill on its way)."""
        cached = self._stored.get(scope)
        if cached is not None and 0 <= cur - cached[0] < HISTORY_EVERY_S:
            k = (cur - cached[0]) // STEP
            older, mins = cached[1], cached[2]
            if not k:
                return older, mins
            return ({f: np.concatenate([v[k:], mins[f][:15 * k].reshape(-1, 15).sum(axis=1)])
                     for f, v in older.items()},
                    {f: np.concatenate([v[15 * k:], np.zeros(15 * k)]) for f, v in mins.items()})
        assert self.history is not None
        older = {f: np.array(v) for f, v in self.history.counts(scope, fields, first, live_from, STEP).items()}
        mins = {f: np.array(v) for f, v in self.history.counts(scope, fields, live_from, cur, 60).items()}
        if any(v.any() for v in older.values()):
            self._stored[scope] = (cur, older, mins)
        return older, mins

    def answer(self, scope: str, kpi: str) -> ScopeForecast | None:
        return self.made.get((scope, kpi))

