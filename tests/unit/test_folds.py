"""KPI folds against kpis.md: a table of single events, and merge properties (hypothesis)."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loadgen import call, random_stream, survey, ticket
from stream.clock import utcnow
from stream.events import Rejected, decode
from stream.folds import Acc, KpiConfig, fold
from stream.kpis import KPIS, achievement, compute
from stream.sketch import Sketch

NOW = time.time()
CFG = KpiConfig()


def folded(*events: dict[str, Any], cfg: KpiConfig = CFG) -> dict[str, tuple[float | None, int]]:
    acc = Acc()
    for e in events:
        ev = decode(orjson.dumps(e), now=utcnow())
        assert not isinstance(ev, Rejected), ev
        fold(acc, ev, cfg)
    return compute(acc)


TABLE = [
    # (events, kpi, value, count)
    ([ticket("ticket.created", NOW, NOW, "t")], "tickets_created", 1, 1),
    ([ticket("ticket.created", NOW, NOW, "t", is_complaint=True), ticket("ticket.created", NOW, NOW, "u")],
     "complaint_rate", 0.5, 2),
    ([ticket("ticket.first_response", NOW, NOW - 100, "t", agent="a"),
      ticket("ticket.first_response", NOW, NOW - 300, "u", agent="a")], "first_response_mean_s", 200, 2),
    ([ticket("ticket.first_response", NOW, NOW - 1800, "t", agent="a", customer_tier="vip"),
      ticket("ticket.first_response", NOW, NOW - 1801, "u", agent="a", customer_tier="vip"),
      ticket("ticket.first_response", NOW, NOW - 14400, "v", agent="a"),
      ticket("ticket.first_response", NOW, NOW - 14401, "w", agent="a")], "first_response_sla_rate", 0.5, 4),
    ([ticket("ticket.resolved", NOW, NOW - 50, "t", agent="a", contacts=1),
      ticket("ticket.resolved", NOW, NOW - 150, "u", agent="a", contacts=2)], "resolution_mean_s", 100, 2),
    ([ticket("ticket.resolved", NOW, NOW, "t", agent="a", contacts=1),
      ticket("ticket.resolved", NOW, NOW, "u", agent="a", contacts=3),
      call("call.ended", NOW, "c", agent="a", talk_s=1.0, hold_s=0.0, wrap_s=0.0, resolved=True),
      call("call.ended", NOW, "d", agent="a", talk_s=1.0, hold_s=0.0, wrap_s=0.0, resolved=False)],
     "fcr_rate", 0.5, 4),
    ([ticket("ticket.resolved", NOW, NOW, "t", agent="a", contacts=1), ticket("ticket.reopened", NOW, NOW, "t")],
     "reopen_rate", 1.0, 1),
    ([ticket("ticket.resolved", NOW, NOW - 86400, "t", agent="a", contacts=1, is_complaint=True),
      ticket("ticket.resolved", NOW, NOW - 86401, "u", agent="a", contacts=1, is_complaint=True),
      ticket("ticket.resolved", NOW, NOW - 10, "v", agent="a", contacts=1)], "complaint_resolved_24h_rate", 0.5, 2),
    ([ticket("ticket.resolved", NOW, NOW, "t", contacts=1, by_bot=True),
      ticket("ticket.resolved", NOW, NOW, "u", agent="a", contacts=1)], "bot_resolution_rate", 0.5, 2),
    ([call("call.offered", NOW, "c")], "calls_offered", 1, 1),
    # service level: answered <= 20 / (answered + abandoned after 5 s); a 5 s abandon is short
    ([call("call.answered", NOW, "a", agent="x", wait_s=20.0), call("call.answered", NOW, "b", agent="x", wait_s=20.5),
      call("call.abandoned", NOW, "c", wait_s=5.0), call("call.abandoned", NOW, "d", wait_s=5.1)],
     "service_level", 1 / 3, 3),
    ([call("call.answered", NOW, "a", agent="x", wait_s=20.0), call("call.abandoned", NOW, "c", wait_s=5.0),
      call("call.abandoned", NOW, "d", wait_s=5.1)], "abandonment_rate", 0.5, 2),
    ([call("call.abandoned", NOW, "c", wait_s=1.0)], "calls_abandoned", 1, 1),
    ([call("call.abandoned", NOW, "c", wait_s=1.0)], "service_level", None, 0),
    ([call("call.answered", NOW, "a", agent="x", wait_s=10.0), call("call.answered", NOW, "b", agent="x", wait_s=30)],
     "asa_s", 20, 2),
    ([call("call.ended", NOW, "c", agent="a", talk_s=100.0, hold_s=20.0, wrap_s=30.0, resolved=True)], "aht_s", 150, 1),
    ([survey(NOW, "s", csat=4), survey(NOW, "t", csat=3), survey(NOW, "u", nps=10)], "csat", 0.5, 2),
    ([survey(NOW, "s", csat=4), survey(NOW, "t", csat=3), survey(NOW, "u", nps=10)], "survey_responses", 3, 3),
    ([survey(NOW, "s", nps=9), survey(NOW, "t", nps=10), survey(NOW, "u", nps=7), survey(NOW, "v", nps=6)],
     "nps", 25.0, 4),
    ([survey(NOW, "s", nps=0)], "nps", -100.0, 1),
    ([survey(NOW, "s", ces=2), survey(NOW, "t", ces=5), survey(NOW, "u", csat=5)], "ces_mean", 3.5, 2),
    ([], "csat", None, 0),
    ([], "tickets_created", 0, 0),
]


@pytest.mark.parametrize(("events", "kpi", "value", "count"), TABLE, ids=[f"{t[1]}-{i}" for i, t in enumerate(TABLE)])
def test_kpi_table(events: list[dict[str, Any]], kpi: str, value: float | None, count: int) -> None:
    got_value, got_count = folded(*events)[kpi]
    assert got_count == count
    if value is None:
        assert got_value is None
    else:
        assert got_value is not None and math.isclose(got_value, value, rel_tol=1e-9)


def test_every_kpi_of_the_spec() -> None:
    # the 22 windowed KPIs of kpis.md, plus backlog_growth (net inflow) for the backlog-growth alert, plus
    # occupancy and away_share of workforce.md, plus the four of voice.md
    assert len(KPIS) == 29 and {"backlog_growth", "occupancy", "away_share"} <= {k.name for k in KPIS}
    assert {"comments", "negative_comment_rate", "sentiment_mean", "mismatch_rate"} <= {k.name for k in KPIS}


def test_thresholds_are_configurable() -> None:
    cfg = KpiConfig(fr_targets={"gold": 100.0}, sl_thresholds={"q9": 10.0}, short_abandon={"q9": 30.0})
    out = folded(ticket("ticket.first_response", NOW, NOW - 150, "t", agent="a", customer_tier="gold"),
                 call("call.answered", NOW, "a", agent="x", wait_s=15.0, queue="q9"),
                 call("call.abandoned", NOW, "b", wait_s=20.0, queue="q9"), cfg=cfg)
    assert out["first_response_sla_rate"] == (0.0, 1)
    assert out["service_level"] == (0.0, 1)  # 15 s > 10 s; the 20 s abandon is short for q9


def test_p90_within_two_percent() -> None:
    durations = [i * 7.3 for i in range(1, 501)]
    out = folded(*[ticket("ticket.first_response", NOW, NOW - d, f"t{i}", agent="a") for i, d in enumerate(durations)])
    exact = sorted(durations)[int(0.9 * 499)]
    assert abs(out["first_response_p90_s"][0] - exact) / exact <= 0.02


def test_achievement_direction() -> None:
    assert achievement("csat", 0.8, 0.9) == pytest.approx(0.8 / 0.9)
    assert achievement("first_response_mean_s", 1200, 600) == pytest.approx(0.5)
    assert achievement("csat", None, 0.9) is None


def _fold_all(events: list[dict[str, Any]]) -> Acc:
    acc = Acc()
    for e in events:
        ev = decode(orjson.dumps(e), now=utcnow())
        assert not isinstance(ev, Rejected)
        fold(acc, ev, CFG)
    return acc


STREAM = random_stream(300, NOW, seed=3)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, len(STREAM)), st.integers(0, len(STREAM)))
def test_merge_of_parts_equals_whole(i: int, j: int) -> None:
    i, j = sorted((i, j))
    parts = [_fold_all(STREAM[:i]), _fold_all(STREAM[i:j]), _fold_all(STREAM[j:])]
    whole = compute(_fold_all(STREAM))
    left = compute(Acc().merge(parts[0]).merge(parts[1]).merge(parts[2]))
    right = compute(Acc().merge(parts[2]).merge(Acc().merge(parts[1]).merge(parts[0])))  # other order
    for name in whole:
        for got in (left[name], right[name]):
            assert got[1] == whole[name][1]
            assert (got[0] is None) == (whole[name][0] is None)
            if got[0] is not None:
                assert math.isclose(got[0], whole[name][0], rel_tol=1e-9, abs_tol=1e-9), name


def test_serialisation_roundtrip() -> None:
    acc = _fold_all(STREAM)
    back = Acc.from_json(orjson.loads(orjson.dumps(acc.to_json())))
    assert compute(back) == compute(acc)


@given(st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=200), st.floats(0.01, 0.99))
def test_sketch_relative_error(values: list[float], q: float) -> None:
    s = Sketch()
    for v in values:
        s.add(v)
    exact = sorted(values)
    r = q * (len(values) - 1)
    lo, hi = exact[math.floor(r)], exact[math.ceil(r)]
    got = s.quantile(q)
    assert got is not None
    assert lo * 0.98 - 1e-6 <= got <= hi * 1.02 + 1e-6
