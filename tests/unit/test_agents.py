"""Live agent state (docs/workforce.md): the rules of the contract case by case, then an oracle written
from the spec against the worker's state through out-of-order events, a crash mid-stream (the tail
read again) and a takeover by a new worker that loads the records, and the view's figures per scope."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loadgen import agent_state
from stream.agents import COUNTED, Agent, AgentCounts
from stream.folds import KpiConfig
from stream.records import AgentKey, decode_key
from stream.state import PartitionState
from stream.view import View
from tests.support import oracle as by_spec

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
AGENT_STATES = ("available", "on_contact", "after_contact_work", "away", "offline")


def fresh(cfg: KpiConfig | None = None) -> PartitionState:
    return PartitionState(0, cfg or KpiConfig(), 60, 7 * 86400)


def feed(ps: PartitionState, events: list[dict[str, object]], first_offset: int = 0, now: float = NOW) -> None:
    for i, ev in enumerate(events):
        ps.apply("agents", first_offset + i, orjson.dumps(ev), now=now)


def view_of(*states: PartitionState) -> View:
    v = View(60)
    for ps in states:
        for k, val in ps.drain().records:
            v.apply(k, val)
    return v


def counts(agents: Iterable[tuple[str, Agent]], scope: str) -> AgentCounts:
    """The per-scope figures by their definition, over a list of agents (what AgentIndex keeps up to date)."""
    by: dict[str, int] = {}
    oldest: dict[str, float] = {}
    for name, a in agents:
        if scope not in a.scopes(name):
            continue
        by[a.state] = by.get(a.state, 0) + 1
        if a.state not in oldest or a.since < oldest[a.state]:
            oldest[a.state] = a.since
    return AgentCounts(sum(n for s, n in by.items() if s != "offline"), by, oldest)


def test_the_newest_event_wins_and_a_repeat_keeps_since() -> None:
    ps = fresh()
    feed(ps, [agent_state(NOW - 300, "a1", "available", team="tech", queues=["tech-line", "vip-line"]),
              agent_state(NOW - 200, "a1", "available", team="tech"),           # a repeat: since stays
              agent_state(NOW - 250, "a1", "away", team="tech", reason="break"),  # older: changes nothing live
              agent_state(NOW - 100, "a1", "on_contact", team="tech")])
    a = ps.agents["a1"]
    assert (a.state, a.since, a.ts, a.queues) == ("on_contact", NOW - 100, NOW - 100, ("tech-line", "vip-line"))
    feed(ps, [agent_state(NOW - 100, "a1", "after_contact_work", team="tech")], first_offset=10)  # a tie: later offset
    assert ps.agents["a1"].state == "after_contact_work"
    feed(ps, [agent_state(NOW - 50, "a1", "away", team="tech", reason="lunch"),
              agent_state(NOW - 40, "a1", "away", team="tech", reason="meeting"),  # another reason: a new since
              agent_state(NOW - 30, "a1", "available", team="tech", queues=[])], first_offset=11)
    a = ps.agents["a1"]
    assert (a.state, a.since, a.queues) == ("available", NOW - 30, ())


def test_counts_and_longest_per_scope() -> None:
    ps = fresh()
    feed(ps, [agent_state(NOW - 600, "a1", "available", team="tech", queues=["tech-line"]),
              agent_state(NOW - 300, "a2", "available", team="tech", queues=["tech-line", "vip-line"]),
              agent_state(NOW - 500, "a3", "away", team="billing", reason="lunch", queues=["billing-line"]),
              agent_state(NOW - 900, "a4", "offline", team="billing", queues=["billing-line"]),
              agent_state(NOW - 120, "a5", "after_contact_work", team="tech", queues=["vip-line"])])
    v = view_of(ps)
    live = v.live_kpis
    tech = live("team:tech", now=NOW)
    assert tech["agents_staffed"] == (3.0, 3) and tech["agents_available"] == (2.0, 2)
    assert tech["longest_available_s"] == (600.0, 2) and tech["longest_after_contact_work_s"] == (120.0, 1)
    assert tech["longest_away_s"] == (None, 0)
    vip = live("queue:vip-line", now=NOW)
    assert (vip["agents_staffed"], vip["agents_available"], vip["agents_after_contact_work"]) == \
        ((2.0, 2), (1.0, 1), (1.0, 1))
    billing = live("team:billing", now=NOW)
    assert billing["agents_staffed"] == (1.0, 1) and billing["agents_away"] == (1.0, 1)  # a4 is offline
    assert live("all", now=NOW)["agents_staffed"] == (4.0, 4)
    assert "agents_staffed" not in live("agent:a1", now=NOW), "per-agent counts are no KPI"
    assert [(n, a.state) for n, a in v.agent_list("queue:billing-line")] == [("a3", "away"), ("a4", "offline")]


def test_an_agent_leaves_after_the_horizon() -> None:
    ps = fresh(KpiConfig(agent_horizon_s=3600))
    feed(ps, [agent_state(NOW - 7200, "old", "available"), agent_state(NOW - 1800, "a1", "available")])
    assert set(ps.agents) == {"a1"}, "an event already past the horizon is not taken in"
    v = View(60)
    for k, val in ps.drain().records:
        v.apply(k, val)
    ps.expire(now=NOW + 1801)
    recs = ps.drain().records
    assert [(decode_key(k), val) for k, val in recs if isinstance(decode_key(k), AgentKey)] == \
        [(AgentKey(0, "a1"), None)]
    for k, val in recs:
        v.apply(k, val)
    assert v.live_kpis("all", now=NOW + 1801)["agents_staffed"] == (0.0, 0) and v.agent_list("all") == []


def oracle(processed: list[tuple[int, dict[str, object]]]) -> dict[str, tuple[str, str | None, float, tuple[str, ...]]]:
    """From the spec, in the order the worker read the events: the newest (ts, then offset) wins; a
    state is set at its event's ts unless it repeats the current state and reason; absent queues keep
    the last ones."""
    out: dict[str, tuple[str, str | None, float, tuple[str, ...]]] = {}
    newest: dict[str, tuple[float, int]] = {}
    for offset, ev in processed:
        name, ts = str(ev["agent"]), datetime.fromisoformat(str(ev["ts"]).replace("Z", "+00:00")).timestamp()
        if name in newest and (ts, offset) <= newest[name]:
            continue
        newest[name] = (ts, offset)
        state, reason = str(ev["state"]), ev.get("reason")
        old = out.get(name)
        queues = tuple(ev["queues"]) if "queues" in ev else (old[3] if old else ())  # type: ignore[arg-type]
        since = old[2] if old and (old[0], old[1]) == (state, reason) else ts
        out[name] = (state, reason, since, queues)  # type: ignore[assignment]
    return out


events_strategy = st.lists(
    st.tuples(st.sampled_from(["a1", "a2", "a3"]), st.sampled_from(AGENT_STATES),
              st.sampled_from([None, "break", "lunch"]), st.integers(0, 600),
              st.sampled_from([None, (), ("q1",), ("q1", "q2")])),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(spec=events_strategy, crash=st.floats(0, 1), lag=st.integers(0, 10), seed=st.integers(0, 99))
def test_agent_state_is_exact_across_a_crash_and_a_takeover(spec: list[tuple[str, str, str | None, int,
                                                                             tuple[str, ...] | None]],
                                                            crash: float, lag: int, seed: int) -> None:
    events = []
    for i, (name, state, reason, back, queues) in enumerate(spec):
        extra: dict[str, object] = {"event_id": f"e{i}", "team": "tech"}
        if reason is not None and state == "away":
            extra["reason"] = reason
        if queues is not None:
            extra["queues"] = list(queues)
        events.append(agent_state(NOW - back, name, state, **extra))  # out of order: ts jitter of 10 min
    # the worker that crashes: applied up to `cut`, its records written, its commit `lag` behind
    cut = int(crash * len(events))
    first = fresh()
    feed(first, events[:cut])
    records = first.drain().records
    random.Random(seed).shuffle(records)  # compaction keeps any order of distinct keys
    # the worker that takes over: loads the records, reads again from the committed offset
    second = fresh()
    second.load(records)
    start = max(0, cut - lag)
    feed(second, events[start:], first_offset=start)
    want = oracle(list(enumerate(events)))
    got = {n: (a.state, a.reason, a.since, a.queues) for n, a in second.agents.items()}
    assert got == want
    # and the view, fed the records of both, agrees with the definition on every scope
    v = View(60)
    for k, val in [*records, *second.drain().records]:
        v.apply(k, val)
    agents = [(n, Agent("tech", q, s, r, since, 0.0)) for n, (s, r, since, q) in want.items()]
    for scope in ("all", "team:tech", "queue:q1", "queue:q2"):
        c = counts(agents, scope)
        live = v.live_kpis(scope, now=NOW)
        assert live["agents_staffed"] == (float(c.staffed), c.staffed)
        for state in COUNTED:
            assert live[f"agents_{state}"][1] == c.by_state.get(state, 0)
        for state in ("available", "away", "after_contact_work"):
            assert live[f"longest_{state}_s"][0] == c.longest_s(state, NOW)
    # time in state, from the spec's timeline, in every scope and window (agent scopes included)
    for scope in ("all", "team:tech", "queue:q1", "queue:q2", "agent:a1", "agent:a2"):
        for window, w in (("5m", 300), ("15m", 900), ("1h", 3600)):
            got_k = v.kpis(scope, window, now=NOW + 30)
            for name, (value, count, _) in by_spec.agent_shares(events, scope, (NOW + 30 - w) // 60 * 60,
                                                             NOW + 30).items():
                gv, gc = got_k[name]
                assert gc == count, (scope, window, name)
                assert (gv is None) == (value is None) and (value is None or abs(gv - value) < 1e-9), \
                    (scope, window, name, gv, value)


def test_time_in_state_is_clipped_to_the_window_and_the_current_state_counts_to_now() -> None:
    """workforce.md "Windowed agent KPIs", case by case (NOW is a whole minute)."""
    ps = fresh()
    feed(ps, [agent_state(NOW - 1000, "a1", "available", team="tech", queues=["q"]),   # spans 15m's start
              agent_state(NOW - 430, "a1", "on_contact", team="tech"),                 # spans bucket ends
              agent_state(NOW - 250, "a1", "away", team="tech", reason="break"),
              agent_state(NOW - 300, "a1", "available", team="tech"),   # older than the newest: no effect
              agent_state(NOW - 130, "a1", "available", team="tech"),
              agent_state(NOW - 70, "a1", "after_contact_work", team="tech")])
    v = view_of(ps)
    # 5m from NOW-300: on_contact 300-250 = 50, away 250-130 = 120, available 130-70 = 60, acw 70 up to now
    k = v.kpis("agent:a1", "5m", now=NOW)
    assert k["occupancy"] == ((50 + 70) / (50 + 60 + 70), 180) and k["away_share"] == (120 / 300, 300)
    # 15m from NOW-900: available 900-430 = 470 more; the state before the window counts from its start
    k = v.kpis("team:tech", "15m", now=NOW)
    assert k["occupancy"] == ((180 + 70) / (470 + 180 + 60 + 70), 780)
    # the current state keeps counting at the next request, exactly to it (the window still starts at
    # its first bucket, NOW-300)
    k = v.kpis("queue:q", "5m", now=NOW + 30)
    assert k["occupancy"] == ((50 + 100) / (50 + 60 + 100), 210)
    # the booked spells are in the buckets: the history's minutes get them
    assert sum(b.acc.t_on_contact for (t, s_, _), b in ps.buckets.items() if t == "agents" and s_ == "all") == 180


def test_a_move_to_another_team_splits_the_time_between_the_scopes() -> None:
    ps = fresh()
    feed(ps, [agent_state(NOW - 600, "a1", "available", team="tech", queues=["q1"]),
              agent_state(NOW - 200, "a1", "available", team="billing", queues=["q2"])])  # since stays
    assert ps.agents["a1"].since == NOW - 600
    v = view_of(ps)
    t = {s: v.window_acc(s, "1h", now=NOW).t_available for s in ("team:tech", "team:billing", "queue:q1",
                                                                   "queue:q2", "all", "agent:a1")}
    assert t == {"team:tech": 400, "team:billing": 200, "queue:q1": 400, "queue:q2": 200, "all": 600,
                 "agent:a1": 600}
    assert v.live_kpis("team:billing", now=NOW)["longest_available_s"] == (600.0, 1)


def test_staffing_of_a_queue_from_the_view() -> None:
    """workforce.md "Staffing": λ = calls offered over 15 min / 900 s, h = aht_s over 1 h, N = staffed
    minus away of the queue, compared with the spec's formula in decimals (test_erlang.py)."""
    from services.loadgen import call
    from stream.view import StaffingConfig
    from tests.support.erlang_reference import required_reference, sl_reference

    ps = fresh()
    calls = [call("call.offered", NOW - 600 + 6 * i, f"c{i}", queue="q") for i in range(90)]  # 0.1 calls/s
    calls += [call("call.ended", NOW - 1800 + 60 * i, f"d{i}", queue="q", agent="x", talk_s=200.0, hold_s=10.0,
                   wrap_s=30.0, resolved=True) for i in range(30)]  # handle time 240 s
    for i, ev in enumerate(calls):
        ps.apply("calls", i, orjson.dumps(ev), now=NOW)
    feed(ps, [agent_state(NOW - 900, f"a{i}", "away" if i < 5 else "available", queues=["q"],
                          **({"reason": "break"} if i < 5 else {})) for i in range(30)])
    v = View(60, staffing=StaffingConfig(targets={"q": 0.8}))
    for k, val in ps.drain().records:
        v.apply(k, val)
    s, offered = v.staffing("queue:q", now=NOW)
    assert (offered, s.lambda_per_s, s.handle_time_s, s.traffic_erlangs, s.agents) == (90, 0.1, 240.0, 24.0, 25)
    assert s.required_agents == required_reference(24.0, 20.0, 240.0, 0.8)
    assert s.staffing_gap == 25 - s.required_agents
    assert s.predicted_service_level is not None
    assert abs(s.predicted_service_level - sl_reference(25, 24.0, 20.0, 240.0)) < 1e-9
    live = v.live_kpis("queue:q", now=NOW)
    assert live["required_agents"] == (float(s.required_agents), 90) and live["staffing_gap"][0] == s.staffing_gap
    # no call ended in the hour: the default handle time; no call offered: no traffic, no prediction
    quiet = View(60, staffing=StaffingConfig(default_handle_s=300))
    s, offered = quiet.staffing("queue:none", now=NOW)
    assert (offered, s.handle_time_s, s.required_agents, s.predicted_service_level) == (0, 300, 0, None)


def test_the_agents_list_gives_each_agent_s_time_in_state_over_a_window() -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from services.config import Settings

    if time.time() % 60 > 50:  # the request falls in the minute the figures are computed for
        time.sleep(61 - time.time() % 60)
    now = time.time() // 60 * 60
    ps = fresh()
    feed(ps, [agent_state(now - 600, "a1", "available", team="tech", queues=["q"]),
              agent_state(now - 240, "a1", "on_contact", team="tech"),
              agent_state(now - 60, "a1", "away", team="tech", reason="break")], now=now)
    app = create_app(Settings(), connect=False)
    for k, v in ps.drain().records:
        app.state.view.apply(k, v)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        plain = c.get("/v1/agents", params={"scope": "team:tech"}).json()
        assert plain["window"] is None and plain["agents"][0]["occupancy"] is None
        body = c.get("/v1/agents", params={"scope": "team:tech", "window": "5m"}).json()
    a = body["agents"][0]
    at = datetime.fromisoformat(body["as_of"].replace("Z", "+00:00")).timestamp()
    t = a["time_in_state_s"]
    assert t["available"] == 60 and t["on_contact"] == 180 and t["away"] == pytest.approx(at - (now - 60), abs=0.01)
    assert a["occupancy"] == pytest.approx(180 / 240) and a["away_share"] == pytest.approx(t["away"] / sum(t.values()))


def test_agents_beyond_the_scope_cap_keep_their_names_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap on distinct agent values does not rename agents in the live state, which knows every
    agent by name (and its time in state), up to LIVE_AGENTS_CAP per partition."""
    from stream import state as state_module

    ps = fresh(KpiConfig(scope_caps={"agent": 2}))
    feed(ps, [agent_state(NOW - 300 + i, f"a{i}", "available", team="tech") for i in range(3)] +
         [agent_state(NOW - 100 + i, f"a{i}", "on_contact", team="tech") for i in range(3)])
    assert sorted(ps.agents) == ["a0", "a1", "a2"]
    # an agent's own time in state is in its record (its spells), not in per-minute buckets
    assert not {sc for (t, sc, _) in ps.buckets if t == "agents" and sc.startswith("agent:")}
    assert ps.agents["a2"].spells == [(NOW - 298, NOW - 98, 0)]
    v = view_of(ps)
    assert v.window_acc("agent:a2", "1h", now=NOW).t_available == 200
    assert [n for n, _ in v.agent_list("team:tech")] == ["a0", "a1", "a2"]
    assert v.window_acc("team:tech", "1h", now=NOW).t_available == 3 * 200
    monkeypatch.setattr(state_module, "LIVE_AGENTS_CAP", 3)
    feed(ps, [agent_state(NOW - 10, "a3", "available", team="tech")], first_offset=10)
    assert "a3" not in ps.agents and ps.counters["agents"].over["agent_state"] == 1
