"""The scope-partitioned evaluator, without a broker: each scope's KPIs on its own partition equal the
global view, alerts fire from the stream's records, and alert state survives a reload."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluator import ScopeEvaluator
from alerts.rules import Rule
from services.loadgen import lifecycles, random_stream, ticket
from stream.scopes import scope_partition
from stream.tickets import LiveIndex, Ticket, live_counts
from stream.view import View
from tests.support.fakes import MemorySink
from tests.support.pipeline import NOW, run, to_messages, view_of

Q = 6


def evaluator_of(sink: MemorySink) -> tuple[ScopeEvaluator, set[str]]:
    ev = ScopeEvaluator(60, Q)
    touched: set[str] = set()
    for q in range(Q):
        ev.load(q, [])
        for k, v in sink.scoped.get(q, []):
            touched |= ev.apply(q, k, v)
    return ev, touched


async def test_every_scope_is_complete_on_its_own_partition() -> None:
    events = random_stream(1500, NOW, seed=11)
    sink = await run(to_messages(events))
    whole = view_of(sink)
    ev, touched = evaluator_of(sink)
    scopes = whole.scopes(now=NOW)
    assert len(scopes) > 20
    assert touched == set(scopes) - {"all"} | ({"all"} & touched)
    for scope in scopes:
        part = ev.parts[scope_partition(scope, Q)].view
        for window in ("5m", "1h", "24h"):
            mine, everyone = part.kpis(scope, window, now=NOW), whole.kpis(scope, window, now=NOW)
            assert mine.keys() == everyone.keys()
            for k, (value, count) in everyone.items():  # equal up to the order of float additions
                assert mine[k][1] == count and mine[k][0] == (None if value is None else pytest.approx(value)), \
                    (scope, window, k)
        assert scope in ev.scopes_of(scope_partition(scope, Q), now=NOW)


async def test_reassigned_ticket_leaves_the_old_agents_partition() -> None:
    msgs = to_messages([ticket("ticket.created", NOW - 100, NOW - 100, "T1", agent="old"),
                        ticket("ticket.first_response", NOW - 50, NOW - 100, "T1", agent="new")])
    sink = MemorySink()
    await run(msgs[:1], sink=sink)
    await run(msgs[1:], sink=sink)
    ev, _ = evaluator_of(sink)
    assert ev.parts[scope_partition("agent:new", Q)].view.kpis("agent:new", "5m", now=NOW)["backlog"] == (1.0, 1)
    assert ev.parts[scope_partition("agent:old", Q)].view.kpis("agent:old", "5m", now=NOW)["backlog"] == (0.0, 0)


async def test_alerts_fire_per_matching_scope_and_survive_a_reload() -> None:
    events = random_stream(1500, NOW, seed=5)
    sink = await run(to_messages(events))
    ev, _ = evaluator_of(sink)
    whole = view_of(sink)
    rule = Rule.model_validate({"id": "cnt", "kpi": "tickets_created", "scope": "team:*", "window": "24h",
                                "op": ">", "warning": 1, "for": "30s"})
    expected = {s for s in whole.scopes(now=NOW) if s.startswith("team:")
                and (whole.kpis(s, "24h", now=NOW)["tickets_created"][0] or 0) > 1}
    assert expected
    out = ev.evaluate({"cnt": rule}, now=NOW)
    assert {t.scope for t in out if t.kind == "pending"} == expected and not [t for t in out if t.kind == "firing"]
    records = ev.drain()
    assert len(records) == len(expected)
    out = ev.evaluate({"cnt": rule}, now=NOW + 31)
    assert {t.scope for t in out if t.kind == "firing"} == expected
    assert ev.active() == {"warning": len(expected), "critical": 0}
    records += ev.drain()
    # a new owner of the partitions loads the records (scoped copies + alert state) and goes on
    again = ScopeEvaluator(60, Q)
    for q in range(Q):
        again.load(q, sink.scoped.get(q, []) + [r for p, r in records if p == q])
    assert again.active() == ev.active()
    assert again.evaluate({"cnt": rule}, now=NOW + 40) == []
    # the rule is deleted: its firing alerts resolve, with the same ids on both
    out = again.evaluate({}, now=NOW + 50)
    assert {t.scope for t in out if t.kind == "resolved"} == expected
    assert [t.event_id for t in out] == [t.event_id for t in ev.evaluate({}, now=NOW + 50)]
    assert ev.active() == {"warning": 0, "critical": 0}


async def test_a_rule_deleted_while_no_worker_ran_still_resolves_its_alerts() -> None:
    sink = await run(to_messages(random_stream(600, NOW, seed=5)))
    ev, _ = evaluator_of(sink)
    rule = Rule.model_validate({"id": "cnt", "kpi": "tickets_created", "scope": "team:*", "window": "24h",
                                "op": ">", "warning": 1, "for": "0s", "labels": {"team": "ops"},
                                "intervention": "open the overflow queue for {scope}"})
    fired = [t for t in ev.evaluate({"cnt": rule}, now=NOW) if t.kind == "firing"]
    assert fired
    records = ev.drain()
    # a worker that starts after the rule was deleted never sees it: the alert state carries it
    fresh = ScopeEvaluator(60, Q)
    for q in range(Q):
        fresh.load(q, sink.scoped.get(q, []) + [r for p, r in records if p == q])
    out = fresh.evaluate({}, now=NOW + 60)
    assert sorted((t.alert_id, t.kind) for t in out) == sorted((t.alert_id, "resolved") for t in fired)
    for t in out:
        assert (t.kpi, t.window, t.op, t.labels) == ("tickets_created", "24h", ">", {"team": "ops"})
        assert t.intervention == f"open the overflow queue for {t.scope}"
    assert fresh.active() == {"warning": 0, "critical": 0}
    assert all(v is None for _, (_, v) in fresh.drain())  # tombstones: the state leaves the topic


def test_alert_state_without_its_rule_is_dropped_with_a_tombstone() -> None:
    ev = ScopeEvaluator(60, Q)
    q = scope_partition("team:x", Q)
    legacy = {"state": "firing", "severity": "warning", "alert_id": "abc", "since": NOW, "firing_since": NOW}
    ev.load(q, [(b'["a","gone","team:x"]', orjson.dumps(legacy))])
    assert ev.active() == {"warning": 1, "critical": 0}
    assert ev.evaluate({}, now=NOW) == []
    assert ev.active() == {"warning": 0, "critical": 0}
    assert ev.drain() == [(q, (b'["a","gone","team:x"]', None))]


def test_apply_ignores_sentinels_and_own_alert_records() -> None:
    ev = ScopeEvaluator(60, Q)
    ev.load(0, [])
    assert ev.apply(0, b'["s","abc"]', b"{}") == set()
    assert ev.apply(0, b'["a","r","team:x"]', b"{}") == set()
    assert isinstance(ev.parts[0].view, View)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.booleans(), st.sampled_from(["a", "b", None]),
                          st.floats(0, 4000), st.booleans()), max_size=60),
       st.floats(0, 6000))
def test_live_index_equals_the_reference_count(ops: list[tuple[int, bool, str | None, float, bool]],
                                               now: float) -> None:
    index, tickets = LiveIndex(), {}
    for tid, close, agent, created, responded in ops:
        old = tickets.get(tid)
        new = None if close else Ticket("t1", "chat", "vip", agent, created, 1800.0, responded)
        if new is None:
            tickets.pop(tid, None)
        else:
            tickets[tid] = new
        index.replace(old, new)
    assert index.all(now=now) == live_counts(tickets.values(), now=now)


async def test_live_call_rules_fire_per_queue_from_the_scope_partitions() -> None:
    events = lifecycles(600, NOW, seed=8)
    sink = await run(to_messages(events))
    ev, _ = evaluator_of(sink)
    rule = Rule.model_validate({"id": "waiting", "kpi": "calls_waiting", "scope": "queue:*", "op": ">",
                                "warning": 0, "for": "0s"})
    whole = view_of(sink)
    expected = {s for s in whole.scopes(now=NOW) if s.startswith("queue:")
                and whole.live_kpis(s, now=NOW)["calls_waiting"][1] > 0}
    assert expected
    fired = {t.scope: t for t in ev.evaluate({"waiting": rule}, now=NOW) if t.kind == "firing"}
    assert set(fired) == expected
    assert all(t.value == whole.live_kpis(s, now=NOW)["calls_waiting"][0] for s, t in fired.items())
