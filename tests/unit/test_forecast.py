"""The forecast (docs/workforce.md "Forecast"): its error on synthetic history with daily and weekly
seasons and Poisson noise, its band's coverage, hour rows read as hours, and the forecaster from the
history and the view to /v1/forecast and the next interval's KPIs."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from api.forecasts import Forecaster
from history.forecast import DAY, HORIZON, STEP, WEEK, expected, forecast, wape
from history.store import HistoryStore
from services import demo
from services.config import Settings
from services.loadgen import call
from stream.folds import IX, Acc, KpiConfig
from stream.state import PartitionState
from stream.view import View

MONDAY = 1795737600.0  # 2026-11-23 00:00 UTC, a Monday


def seasonal(weeks: int, per_quarter_at_peak: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts per quarter hour with the demo's daily and weekly seasons, Poisson noise; and the rate."""
    t = MONDAY + STEP * np.arange(weeks * WEEK)
    rate = np.array([demo.season(float(x) + STEP / 2) for x in t]) * per_quarter_at_peak
    return np.random.default_rng(seed).poisson(rate).astype(float), rate


def backtest(y: np.ndarray, fn, days: int = 7) -> tuple[float, list[float], list[float]]:  # type: ignore[no-untyped-def]
    actual: list[float] = []
    predicted: list[float] = []
    for origin in range(len(y) - days * DAY, len(y) - HORIZON, 4):  # every hour of the last week, 8 ahead
        predicted += list(fn(y[:origin]))
        actual += list(y[origin:origin + HORIZON])
    return wape(actual, predicted) or 0.0, actual, predicted


@pytest.mark.parametrize(("peak", "slack"), [(20.0, 1.25), (150.0, 1.25), (600.0, 1.35)])
def test_the_forecast_is_close_to_the_noise_floor_and_beats_seasonal_naive(peak: float, slack: float) -> None:
    """WAPE over a week of 2-hour forecasts within `slack` of the error of knowing the true rate (Poisson
    noise alone), and below seasonal naive's (the same interval a week earlier)."""
    y, rate = seasonal(5, peak, seed=int(peak))
    ours, actual, _ = backtest(y, lambda h: expected(h, HORIZON)[1])
    floor, _, _ = backtest(y, lambda h: rate[len(h):len(h) + HORIZON])
    naive, _, _ = backtest(y, lambda h: h[len(h) - WEEK:len(h) - WEEK + HORIZON])
    assert ours <= floor * slack, (ours, floor)
    assert ours < naive, (ours, naive)


def test_the_band_holds_about_eight_in_ten() -> None:
    y, _ = seasonal(5, 150.0, seed=3)
    inside = total = 0
    for origin in range(len(y) - 7 * DAY, len(y) - HORIZON, 8):
        f = forecast(y[:origin])
        for p, a in zip(f.points, y[origin:origin + HORIZON], strict=True):
            inside += p.low <= a <= p.high
            total += 1
    assert 0.72 <= inside / total <= 0.92, inside / total


def test_the_method_follows_the_history_there_is() -> None:
    y, _ = seasonal(2, 50.0, seed=4)
    assert forecast(y[:20]).method == "flat"
    assert forecast(y[:3 * DAY]).method == "daily"
    assert forecast(y).method == "profile"
    assert forecast([]).points[0].expected == 0.0


def test_a_level_shift_is_followed_where_the_volume_makes_it_real() -> None:
    """Four hours at 1.5x the usual: a busy queue's forecast follows, a quiet one's barely moves."""
    for peak, least, most in ((600.0, 1.35, 1.6), (2.0, 0.9, 1.3)):
        y, rate = seasonal(5, peak, seed=5)
        origin = len(y) - DAY // 2  # noon
        y[origin - 16:origin] = np.random.default_rng(6).poisson(rate[origin - 16:origin] * 1.5)
        got = expected(y[:origin], HORIZON)[1].sum() / rate[origin:origin + HORIZON].sum()
        assert least <= got <= most, (peak, got)


def test_hour_rows_are_read_as_hours(engine: Engine) -> None:
    store = HistoryStore(engine)
    hour, minute = Acc(), Acc()
    hour.v[IX["offered"]] = 40.0
    minute.v[IX["offered"]] = 3.0
    store.replace_source("test", [("h", "all", 7200, hour), ("m", "all", 7200 + 1000, minute)])
    assert store.counts("all", ["offered"], 7200, 10800, STEP) == {"offered": [10.0, 13.0, 10.0, 10.0]}


async def test_the_forecaster_from_history_and_view_to_the_api(engine: Engine) -> None:
    now = time.time()
    store = HistoryStore(engine)
    store.replace_source("demo:history", demo.history(now - 1800, 28, rate=1.0, seed=1))
    ps = PartitionState(0, KpiConfig(), 60, 7 * 86400)
    for i in range(60):  # the last half hour, as the stream saw it
        ev = call("call.offered", now - 1800 + 30 * i, f"c{i}", queue="tech-line", team="tech")
        ps.apply("calls", i, orjson.dumps(ev), now=now)
    app = create_app(Settings(), connect=False)
    view: View = app.state.view
    for k, v in ps.drain().records:
        view.apply(k, v)
    forecaster: Forecaster = app.state.forecaster
    forecaster.connect(store)
    await forecaster.refresh(now)
    made = forecaster.answer("all", "calls_offered")
    assert made is not None and made.method == "profile"
    cur = int(now // STEP) * STEP
    assert [i.start for i in made.intervals] == list(range(cur - DAY * STEP, cur + HORIZON * STEP + STEP, STEP))
    assert all(i.actual is not None for i in made.intervals[:DAY + 1])
    assert all(i.actual is None for i in made.intervals[DAY + 1:])
    assert made.wape_24h is not None and made.wape_24h < 0.15, made.wape_24h  # ~400 calls per busy quarter
    # the next two hours against the plan the history was drawn from: no level bias from a history
    # that begins partway through the oldest season it reads (it is read from its first count)
    plan = demo.DemoTraffic(now, seed=1)
    for i in made.intervals[DAY + 1:]:
        want = sum(plan.calls_per_s(team, i.start + STEP / 2) for team in demo.TEAMS) * STEP
        assert i.expected is not None and abs(i.expected - want) <= 0.15 * want + 10, (i.start, i.expected, want)
    assert forecaster.answer("queue:tech-line", "tickets_created") is None  # tickets have no queue
    tech = forecaster.answer("queue:tech-line", "calls_offered")
    assert tech is not None and all(i.required_agents is not None for i in tech.intervals)
    # the next interval, as every view gets it from the published record
    live = view.live_kpis("queue:tech-line", now=now)
    nxt = tech.intervals[DAY + 1]
    assert live["calls_offered_next"][0] == nxt.expected
    assert live["required_agents_next"][0] == nxt.required_agents
    assert live["staffing_gap_next"][0] == 0 - (nxt.required_agents or 0)  # nobody logged in
    with TestClient(app, base_url="http://127.0.0.1") as c:
        body = c.get("/v1/forecast", params={"scope": "queue:tech-line"}).json()
        assert len(body["intervals"]) == DAY + 1 + HORIZON and sum(i["future"] for i in body["intervals"]) == 8
        assert body["method"] == "profile" and body["kpi"] == "calls_offered"
        assert c.get("/v1/forecast", params={"scope": "queue:tech-line", "kpi": "tickets_created"}).status_code == 422
        assert c.get("/v1/forecast", params={"scope": "channel:phone"}).status_code == 422
