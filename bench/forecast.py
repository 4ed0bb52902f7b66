"""The forecast's error and cost (history/forecast.py), beside the methods it was chosen against.

    python -m bench.forecast        # alone; `make bench` runs it too (bench/run.py)

- error: WAPE of 2-hour forecasts made at every hour of the last of five weeks of synthetic history
  (the demo's daily and weekly seasons, Poisson noise) at three volumes, and after a 25 % level
  shift in the last week; for sqm's profile, seasonal naive (a week ago) and statsmodels'
  Holt-Winters (additive weekly season, heuristic initialisation, fitted on three weeks), and the
  error of knowing the true rate (the noise floor);
- fit time: one forecast with its band (history/forecast.py `forecast`), one Holt-Winters fit, and
  `Forecaster.make` for one scope of the demo's four weeks of history on SQLite (the history read
  included), as the API runs it every 5 minutes.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from history.forecast import HORIZON, STEP, WEEK, expected, forecast, wape
from services import demo

MONDAY = 1795737600.0  # 2026-11-23 00:00 UTC
VOLUMES = (2.0, 20.0, 150.0)  # calls per quarter hour at the busiest weekday hour

Method = Callable[[np.ndarray], np.ndarray]


def synthetic(weeks: int, peak: float, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    t = MONDAY + STEP * np.arange(weeks * WEEK)
    rate = np.array([demo.season(float(x) + STEP / 2) for x in t]) * peak
    rate[-WEEK:] *= shift
    return np.random.default_rng(seed).poisson(rate).astype(float), rate


def holt_winters(y: np.ndarray) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(y[-3 * WEEK:], seasonal="add", seasonal_periods=WEEK,
                                   initialization_method="heuristic").fit()
    return np.maximum(0.0, fit.forecast(HORIZON))


def backtest(y: np.ndarray, fn: Method, every: int = 4) -> float:
    actual: list[float] = []
    predicted: list[float] = []
    for origin in range(len(y) - WEEK, len(y) - HORIZON, every):
        predicted += list(fn(y[:origin]))
        actual += list(y[origin:origin + HORIZON])
    return round(wape(actual, predicted) or 0.0, 3)


def errors() -> list[dict[str, Any]]:
    out = []
    for shift in (1.0, 1.25):
        for peak in VOLUMES:
            y, rate = synthetic(5, peak, seed=int(peak * 10 + shift * 100), shift=shift)
            out.append({
                "calls_per_busy_quarter": peak, "level_shift": shift,
                "profile_sqm": backtest(y, lambda h: expected(h, HORIZON)[1]),
                "seasonal_naive_week": backtest(y, lambda h: h[len(h) - WEEK:len(h) - WEEK + HORIZON]),
                "holt_winters_statsmodels": backtest(y, holt_winters, every=24),
                "noise_floor": backtest(y, lambda h, r=rate: r[len(h):len(h) + HORIZON]),
            })
    return out


def fit_times() -> dict[str, float]:
    y, _ = synthetic(5, 150.0, seed=1)
    t0 = time.perf_counter()
    for _ in range(20):
        forecast(y)
    ours = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for _ in range(3):
        holt_winters(y)
    hw = (time.perf_counter() - t0) / 3
    return {"forecast_with_band_ms": round(ours * 1000, 2), "holt_winters_fit_ms": round(hw * 1000, 1),
            **scope_make()}


def scope_make() -> dict[str, float]:
    """`Forecaster.make` per scope on the demo's four weeks of history (SQLite), median of the scopes."""
    from api.forecasts import Forecaster
    from db.engine import connect
    from history.store import HistoryStore
    from stream.view import View

    with tempfile.TemporaryDirectory() as d:
        engine = connect(f"sqlite:///{Path(d) / 'f.db'}")
        store = HistoryStore(engine)
        now = time.time()
        t0 = time.perf_counter()
        n = store.replace_source("demo:history", demo.history(now - 1800, 28))
        write_s = time.perf_counter() - t0
        f = Forecaster(View(60))
        f.connect(store)
        scopes = ["all", *(f"team:{t}" for t in demo.TEAMS), *(f"queue:{q}" for q in demo.TEAMS.values())]
        times = []
        for scope in scopes:
            t0 = time.perf_counter()
            f.make(scope, now)
            times.append(time.perf_counter() - t0)
        engine.dispose()
    return {"make_per_scope_ms": round(statistics.median(times) * 1000, 1),
            "make_all_demo_scopes_s": round(sum(times), 2), "demo_history_rows": n,
            "demo_history_write_s": round(write_s, 1)}


def forecast_bench(say: Callable[[str], None] = print) -> dict[str, Any]:
    errs = errors()
    for e in errs:
        say(f"forecast WAPE at {e['calls_per_busy_quarter']:g} calls/quarter (level x{e['level_shift']}): "
            f"profile {e['profile_sqm']}, seasonal naive {e['seasonal_naive_week']}, Holt-Winters "
            f"{e['holt_winters_statsmodels']}, noise floor {e['noise_floor']}")
    times = fit_times()
    say(f"forecast fit: {times['forecast_with_band_ms']} ms with its band (Holt-Winters "
        f"{times['holt_winters_fit_ms']} ms); per scope with the history read {times['make_per_scope_ms']} ms")
    return {"wape": errs, "time": times}


if __name__ == "__main__":
    print(json.dumps(forecast_bench(), indent=2))
