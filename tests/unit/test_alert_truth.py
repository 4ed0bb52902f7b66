"""What the lead sees is true now (docs/api.md "Alerts"): live values from the engine, the census that ends the
alerts the engine does not hold, rule texts in two languages, acknowledging once, and closing the
loop (the KPI at the acknowledgement and after). The database parts on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.delivery import fmt_value, localized, render, slack_body
from alerts.engine import AlertState, step, texts_in
from alerts.evaluator import LIVE_EVERY_S, SCOPE_LEFT, ScopeEvaluator
from alerts.followup import Reading, due_checks, verdict
from alerts.history import RESPONSE_BUCKETS_S, AlertRepository, Conflict, readings_of
from alerts.notifier import ENDED_UNHELD, Notifier
from alerts.routing import DeliveryTarget, NotifyConfig
from alerts.rules import DEFAULT_RULE_FILE, Rule, load_rule_file
from db.schema import AlertEventRow, AlertRow, OutboxRow
from services.loadgen import call, random_stream
from stream.scopes import scope_partition
from tests.support.fakes import MemorySink
from tests.support.pipeline import NOW, run, to_messages

T0 = 1_800_000_000.0
Q = 6
RULE = Rule.model_validate({
    "id": "ab", "kpi": "abandonment_rate", "scope": "team:*", "window": "5m", "op": ">", "warning": 0.05,
    "critical": 0.10, "labels": {"audience": "on-call"},
    "summary": "Abandonment of {scope} is {value:.1%}", "intervention": "Offer call-back.",
    "texts": {"zh-CN": {"summary": "{scope} 的放弃率为 {value:.1%}", "intervention": "提供回拨。"}}})
CONFIG = NotifyConfig.model_validate({
    "targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"},
                {"name": "cn", "type": "slack", "url": "http://chat.test/x", "language": "zh-CN"}],
    "routes": [{"targets": ["hook", "cn"], "repeat_interval": "10m"}]})


def transitions(rule: Rule, readings: list[tuple[float, float]], scope: str = "team:a") -> list[dict[str, Any]]:
    st, out = AlertState(), []
    for ts, v in readings:
        st, made = step(rule, st, v, 100, ts, scope)
        out += [t.to_json() for t in made]
    return out


# -- texts -------------------------------------------------------------------------------------------
def test_every_shipped_rule_speaks_english_and_chinese() -> None:
    rules, errors = load_rule_file(DEFAULT_RULE_FILE)
    assert not errors
    for r in rules:
        zh = r.texts.get("zh-CN")
        assert r.summary and r.intervention and zh and zh.summary and zh.intervention, r.id
        assert any("\u4e00" <= c <= "\u9fff" for c in zh.summary + zh.intervention), r.id
    # every headline figure of the whole-centre board has a rule on `all`
    on_all = {r.kpi for r in rules if r.scope == "all"}
    assert {"service_level", "asa_s", "abandonment_rate", "calls_waiting", "longest_wait_s", "first_response_sla_rate",
            "backlog", "first_response_at_risk", "first_response_overdue", "fcr_rate", "csat", "nps",
            "ces_mean"} <= on_all


def test_transitions_carry_the_texts_of_each_language() -> None:
    t = transitions(RULE, [(T0, 0.12)])[0]
    assert t["summary"] == "Abandonment of team:a is 12.0%"
    assert texts_in(t, "zh-CN") == ("team:a 的放弃率为 12.0%", "提供回拨。")
    assert texts_in(t, "en") == ("Abandonment of team:a is 12.0%", "Offer call-back.")
    # a rule with one language shows that one everywhere; one without a summary gets the default in each
    one = RULE.model_copy(update={"texts": {}})
    assert texts_in(transitions(one, [(T0, 0.12)])[0], "zh-CN") == ("Abandonment of team:a is 12.0%",
                                                                      "Offer call-back.")
    bare = RULE.model_copy(update={"texts": {}, "summary": ""})
    zh = texts_in(transitions(bare, [(T0, 0.12)])[0], "zh-CN")[0]
    assert zh.startswith("team:a 的放弃率为 12.0%")


def test_a_target_names_its_language_and_a_repeat_says_what_is_true_now() -> None:
    alert = {**transitions(RULE, [(T0, 0.106)])[0], "state": "firing", "live_value": 0.265, "acked_by": None,
             "escalation_level": 0, "started_at": T0, "alert_id": "a1"}
    cn = CONFIG.target("cn")
    assert cn is not None and cn.language == "zh-CN"
    body = slack_body(localized(alert, cn.language), "repeat", "http://sqm")
    assert "team:a 的放弃率为 10.6%" in body["text"] and body["attachments"][0]["fields"][0]["value"] == \
        "26.5% now (10.6% when it fired)"
    assert fmt_value({**alert, "state": "resolved"}) == "10.6%"
    assert b"Offer call-back." in render(DeliveryTarget.model_validate({"name": "h", "type": "webhook", "url": "http://h"}),
                                         alert, "repeat", "http://sqm", T0)
    with pytest.raises(ValueError, match="not supported"):
        DeliveryTarget.model_validate({"name": "x", "type": "webhook", "url": "http://h", "language": "fr"})


# -- the engine: live values, the census, scopes that left -------------------------------------------
async def loaded() -> tuple[ScopeEvaluator, MemorySink]:
    sink = await run(to_messages(random_stream(1500, NOW, seed=5)))
    ev = ScopeEvaluator(60, Q)
    for q in range(Q):
        ev.load(q, sink.scoped.get(q, []))
    return ev, sink


async def test_live_values_go_out_when_the_figure_moves_at_most_every_ten_seconds() -> None:
    ev, _ = await loaded()
    rule = Rule.model_validate({"id": "cnt", "kpi": "tickets_created", "scope": "team:*", "window": "5m", "op": ">",
                                "warning": -1, "for": "0s"})  # fires and stays firing whatever the count
    fired = ev.evaluate({"cnt": rule}, now=NOW)
    assert fired and ev.live_values() == []  # the transitions carry the value
    assert ev.evaluate({"cnt": rule}, now=NOW + 1) == [] and ev.live_values() == []  # too soon
    # later the 5-minute window has lost events: the figure moved, and it goes out once
    later = NOW + LIVE_EVERY_S + 400
    ev.evaluate({"cnt": rule}, now=later)
    live = ev.live_values()
    firing = {t.alert_id for t in fired if t.kind == "firing"}
    assert live and {v.alert_id for v in live} <= firing
    for v in live:
        part = ev.parts[scope_partition(v.scope, Q)].view
        assert (v.value, v.count) == part.kpi(v.scope, "tickets_created", "5m", now=later)
    ev.evaluate({"cnt": rule}, now=later + 1)
    assert ev.live_values() == []


async def test_the_census_lists_what_a_partition_holds_and_what_just_changed() -> None:
    ev, _ = await loaded()
    rule = Rule.model_validate({"id": "cnt", "kpi": "tickets_created", "scope": "team:*", "window": "24h",
                                "op": ">", "warning": 1, "for": "0s"})
    out = ev.evaluate({"cnt": rule}, now=NOW)
    by_q: dict[int, set[str]] = {}
    for t in out:
        by_q.setdefault(scope_partition(t.scope, Q), set()).add(t.alert_id)
    for q in range(Q):
        c = ev.census(q, now=NOW)
        assert set(c.alerts) == by_q.get(q, set()) and (c.partition, c.partitions, c.ts) == (q, Q, NOW)
    # resolved in this very evaluation: still listed, so that its own transition ends it
    gone = ev.evaluate({}, now=NOW + 10)
    q = scope_partition(gone[0].scope, Q)
    assert gone[0].alert_id not in ev.census(q, now=NOW + 10).alerts
    assert gone[0].alert_id in ev.census(q, now=NOW + 10, transitions=gone).alerts


async def test_an_alert_whose_scope_left_the_state_ends_with_the_reason() -> None:
    # a queue with answered calls and none waiting: once its buckets leave the 24 h window, nothing of it is left
    events = [e for i in range(5) for e in (call("call.offered", NOW - 60 + i, f"c{i}", queue="q9"),
                                            call("call.answered", NOW - 50 + i, f"c{i}", queue="q9", wait_s=3,
                                                 agent="a1"))]
    sink = await run(to_messages(events))
    ev = ScopeEvaluator(60, Q)
    for q in range(Q):
        ev.load(q, sink.scoped.get(q, []))
    # the value the rule reads stays breached: only the scope's leaving can end the alert
    rule = Rule.model_validate({"id": "ans", "kpi": "calls_answered", "scope": "queue:*", "window": "24h",
                                "op": ">=", "warning": 0, "for": "0s"})
    fired = [t for t in ev.evaluate({"ans": rule}, now=NOW) if t.kind == "firing"]
    assert [t.scope for t in fired] == ["queue:q9"]
    later = NOW + 2 * 86400
    for part in ev.parts.values():
        part.view.expire(now=later)
    out = ev.evaluate({"ans": rule}, now=later)
    assert [(t.alert_id, t.kind, t.reason) for t in out] == [(fired[0].alert_id, "resolved", SCOPE_LEFT)]
    assert ev.active() == {"warning": 0, "critical": 0}


# -- the notifier: endings, live values ----------------------------------------------------------------
def census(alerts: list[str], ts: float, scope: str = "team:a") -> dict[str, Any]:
    return {"kind": "census", "partition": scope_partition(scope, Q), "partitions": Q, "alerts": alerts, "ts": ts}


def test_the_census_ends_the_alerts_the_engine_does_not_hold(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    ghost = transitions(RULE, [(T0, 0.12)])  # firing at once (no `for`)
    kept = transitions(RULE, [(T0, 0.2)], scope="team:b")
    assert n.ingest(ghost + kept) == 4
    held_id = kept[0]["alert_id"]
    # a new broker: the engine holds nothing of team:a; team:b's partition holds its alert
    n.ingest([census([], T0 + 60), census([held_id], T0 + 60, scope="team:b")])
    with Session(engine) as s:
        a = s.get(AlertRow, ghost[0]["alert_id"])
        b = s.get(AlertRow, held_id)
        assert a is not None and b is not None
        assert (a.state, a.end_reason) == ("resolved", ENDED_UNHELD) and b.state == "firing"
        ended = s.scalars(select(AlertEventRow).where(AlertEventRow.kind == "ended")).one()
        assert ended.alert_id == a.id and ended.detail["reason"] == ENDED_UNHELD
        told = [(r.reason, r.target) for r in s.scalars(select(OutboxRow).where(OutboxRow.alert_id == a.id)
                                                         .order_by(OutboxRow.id))]
    # delivered like a resolution, to everyone who heard of it
    assert told == [("firing", "cn"), ("firing", "hook"), ("resolved", "cn"), ("resolved", "hook")]
    # a transition of the ended alert arriving late (e.g. its real resolution) is a replay
    assert n.ingest(transitions(RULE, [(T0, 0.12), (T0 + 30, 0.01)])) == 0
    # an alert that began after the census was taken is not its business
    young = transitions(RULE, [(T0 + 120, 0.3)], scope="team:a")
    n.ingest(young)
    n.ingest([census([], T0 + 100)])
    with Session(engine) as s:
        assert s.get(AlertRow, young[0]["alert_id"]).state == "firing"  # type: ignore[union-attr]


def test_live_values_are_kept_for_repeats_and_never_go_back(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    t = transitions(RULE, [(T0, 0.12)])
    n.ingest(t)
    aid = t[0]["alert_id"]
    n.ingest([{"kind": "live", "alert_id": aid, "rule_id": "ab", "scope": "team:a", "value": 0.3, "count": 150,
               "ts": T0 + 20},
              {"kind": "live", "alert_id": aid, "rule_id": "ab", "scope": "team:a", "value": 0.2, "count": 140,
               "ts": T0 + 10}])
    with Session(engine) as s:
        a = s.get(AlertRow, aid)
        assert a is not None and (a.live_value, a.live_count) == (0.3, 150)
        assert s.scalar(select(AlertEventRow).where(AlertEventRow.kind == "live")) is None  # no history rows
    n.schedule(T0 + 11 * 60)  # the repeat interval has passed
    with Session(engine) as s:
        repeat = s.scalars(select(OutboxRow).where(OutboxRow.reason == "repeat")).first()
    assert repeat is not None and repeat.payload["live_value"] == 0.3 and repeat.payload["value"] == 0.12


# -- acknowledging and closing the loop -----------------------------------------------------------------
def test_two_concurrent_acknowledgements_one_wins(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    t = transitions(RULE, [(T0, 0.12)])
    n.ingest(t)
    history, aid = AlertRepository(engine), t[0]["alert_id"]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def ack(who: str) -> None:
        barrier.wait()
        try:
            history.acknowledge(aid, by=who, note="", now=datetime.fromtimestamp(T0 + 90, UTC), reading=(0.12, 100))
            results.append("ok")
        except Conflict as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=ack, args=(w,)) for w in ("ana", "bo")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results)[-1] == "ok" and "acknowledged by" in sorted(results)[0], results
    _, events = history.alert(aid)
    assert [e.kind for e in events].count("acknowledged") == 1
    assert readings_of(events) == [Reading(0, 0.12, 100)]
    (rule, measure, seconds), = history.timings(datetime.fromtimestamp(T0 - 1, UTC))
    assert (rule, measure, seconds) == ("ab", "ack", [90.0])
    stats = history.stats().timing[("ab", "ack")]
    assert stats[1:] == (1, 90.0) and stats[0][RESPONSE_BUCKETS_S.index(120.0)] == 1


def test_checks_after_the_acknowledgement_and_the_verdict(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    t = transitions(RULE, [(T0, 0.12)])
    n.ingest(t)
    history, aid = AlertRepository(engine), t[0]["alert_id"]
    history.acknowledge(aid, by="ana", note="call-back on", now=datetime.fromtimestamp(T0, UTC), reading=(0.12, 100))
    (a, done), = history.due_checks(datetime.fromtimestamp(T0 + 905, UTC), 1800)
    assert done == set() and due_checks(905, done) == [900]
    assert history.record_check(aid, after_s=900, reading=(0.07, 120), now=datetime.fromtimestamp(T0 + 905, UTC))
    assert not history.record_check(aid, after_s=900, reading=(0.07, 120), now=datetime.fromtimestamp(T0 + 906, UTC))
    readings = history.readings([aid])[aid]
    assert readings == [Reading(0, 0.12, 100), Reading(900, 0.07, 120)]
    assert verdict(a.op, readings, resolved=False) == "improved"
    assert verdict(a.op, [Reading(0, 0.12, 100), Reading(900, 0.15, 90)], resolved=False) == "not improved"


@pytest.mark.parametrize(("op", "at_ack", "later", "expected"), [
    ("<", 0.60, 0.70, "improved"), ("<", 0.60, 0.55, "not improved"), ("<=", 0.60, 0.60, "not improved"),
    (">", 30.0, 12.0, "improved"), (">", 30.0, 45.0, "not improved"), (">", 30.0, None, "waiting"),
])
def test_verdicts_follow_the_rules_direction(op: str, at_ack: float, later: float | None, expected: str) -> None:
    readings = [Reading(0, at_ack, 50)] + ([Reading(900, later, 50)] if later is not None else [])
    assert verdict(op, readings, resolved=False) == expected
    assert verdict(op, readings, resolved=True) == "recovered"
