"""Cardinality caps: a flood of distinct dimension values stays bounded and counts under `other`."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.loadgen import call, survey
from stream.caps import OTHER, ScopeIndex
from stream.events import CallAnswered, decode
from stream.folds import KpiConfig
from stream.state import PartitionState
from stream.view import View
from tests.support.pipeline import NOW

CAPS = {"team": 3, "queue": 2, "channel": 2, "tier": 2, "agent": 4}


def test_index_admits_up_to_the_cap_then_other() -> None:
    idx = ScopeIndex(CAPS)
    for t in ("a", "b", "c"):
        idx.add(f"team:{t}")
    ev = decode(orjson.dumps(call("call.answered", NOW, "c1", team="d", agent="x", wait_s=1.0)),
                now=datetime.fromtimestamp(NOW, UTC))
    assert isinstance(ev, CallAnswered)
    admitted, over = idx.admit(ev)
    assert admitted.team == OTHER and over == ("team",) and admitted.agent == "x"
    idx.remove("team:a")
    admitted, over = idx.admit(ev)
    assert admitted.team == "d" and over == ()


def test_a_flood_of_team_names_is_bounded_and_counted() -> None:
    cfg = KpiConfig(scope_caps=dict(CAPS))
    st = PartitionState(0, cfg, 60, 7 * 86400)
    n = 5000
    for i in range(n):
        ev = survey(NOW - 10, f"s{i}", team=f"team-{i}", channel=f"ch-{i % 7}", customer_tier=f"t{i}", csat=4)
        st.apply("surveys", i, orjson.dumps(ev), now=NOW)
    teams = {k[1] for k in st.buckets if k[1].startswith("team:")}
    assert teams == {"team:team-0", "team:team-1", "team:team-2", "team:other"}
    assert {k[1] for k in st.buckets if k[1].startswith("channel:")} == {"channel:ch-0", "channel:ch-1",
                                                                          "channel:other"}
    over = st.counters["surveys"].over
    assert over["team"] == n - 3 and over["tier"] == n - 2 and over["channel"] == sum(1 for i in range(n) if i % 7 > 1)
    view = View(60)
    for k, v in st.drain().records:
        view.apply(k, v)
    # every event is still counted: in `all`, and under its own value or `other`
    assert view.kpis("all", "1h", now=NOW)["survey_responses"][1] == n
    assert view.kpis("team:other", "1h", now=NOW)["survey_responses"][1] == n - 3
    assert view.pipeline_counters().over["team"] == n - 3
    assert len(view.scopes(now=NOW)) <= 1 + 4 + 3 + 3


def test_the_cap_frees_places_when_values_expire() -> None:
    cfg = KpiConfig(scope_caps=dict(CAPS))
    st = PartitionState(0, cfg, 60, 7 * 86400)
    for i in range(3):
        st.apply("surveys", i, orjson.dumps(survey(NOW - 80000, f"s{i}", team=f"old{i}", csat=4)), now=NOW)
    st.expire(now=NOW + 7200)  # their buckets are now older than 24 h
    st.apply("surveys", 3, orjson.dumps(survey(NOW + 7000, "s3", team="new", csat=4)), now=NOW + 7200)
    assert any(k[1] == "team:new" for k in st.buckets)
    assert st.counters["surveys"].over.get("team", 0) == 0


def test_a_reload_decides_as_the_first_run() -> None:
    cfg = KpiConfig(scope_caps=dict(CAPS))
    st = PartitionState(0, cfg, 60, 7 * 86400)
    for i in range(10):
        st.apply("surveys", i, orjson.dumps(survey(NOW - 10, f"s{i}", team=f"t{i}", csat=4)), now=NOW)
    records = st.drain().records
    again = PartitionState(0, cfg, 60, 7 * 86400)
    again.load(records)
    for st_ in (st, again):
        st_.apply("surveys", 10, orjson.dumps(survey(NOW - 5, "s10", team="t1", csat=4)), now=NOW)
        st_.apply("surveys", 11, orjson.dumps(survey(NOW - 5, "s11", team="t9", csat=4)), now=NOW)
    assert {k[1] for k in st.buckets} == {k[1] for k in again.buckets}
    assert st.counters["surveys"].over == again.counters["surveys"].over


def test_a_flood_of_ticket_and_call_ids_is_bounded_and_counted() -> None:
    from services.loadgen import ticket
    from stream.records import Counters

    cfg = KpiConfig(max_live_tickets=50, max_live_calls=20)
    st = PartitionState(0, cfg, 60, 7 * 86400)
    for i in range(300):
        st.apply("tickets", i, orjson.dumps(ticket("ticket.created", NOW - 600 + i, NOW - 600 + i, f"t{i}")), now=NOW)
        st.apply("calls", i, orjson.dumps(call("call.offered", NOW - 600 + i, f"c{i}")), now=NOW)
    view = View(60)
    for k, v in st.drain().records:
        view.apply(k, v)
    st.expire(now=NOW)
    assert set(st.tickets) == {f"t{i}" for i in range(250, 300)}, "the newest stay"
    assert set(st.calls) == {f"c{i}" for i in range(280, 300)}
    for k, v in st.drain().records:  # the evicted leave the view too (tombstones)
        view.apply(k, v)
    assert len(view.tickets) == 50 and len(view._waiting) == 20
    c = view.pipeline_counters()
    assert c.evicted == {"ticket": 250, "call": 280}
    assert Counters.from_bytes(st.counters["tickets"].to_bytes()).evicted == {"ticket": 250}, "kept across restarts"
