"""The notifier's database work on a real SQLite file and on a real PostgreSQL, with a simulated
clock: history and dedupe, routing, silences, repeats, escalation, leases, ordering, backoff and
retention. (Real targets: integration.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.engine import AlertState, Transition, step
from alerts.notifier import Notifier
from alerts.routing import NotifyConfig
from alerts.rules import Rule
from db.schema import AlertEventRow, AlertRow, DeliveryStatRow, OutboxRow, SilenceRow

T0 = 1_800_000_000.0
RULE = Rule.model_validate({"id": "sl", "kpi": "service_level", "scope": "team:*", "op": "<", "warning": 0.8,
                            "critical": 0.5, "labels": {"audience": "on-call"}})
CONFIG = NotifyConfig.model_validate({
    "targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"},
                {"name": "am", "type": "alertmanager", "url": "http://am.test"},
                {"name": "pager", "type": "webhook", "url": "http://pager.test/p"}],
    "routes": [{"match": {"audience": "on-call"}, "targets": ["hook", "am"], "repeat_interval": "10m",
                "escalation": [{"after": "5m", "targets": ["pager"]}]}],
})


def transitions(readings: list[tuple[float, float]], scope: str = "team:a") -> list[dict[str, Any]]:
    st, out = AlertState(), []
    for ts, v in readings:
        st, ts_ = step(RULE, st, v, 100, ts, scope)
        out += [t.to_json() for t in ts_]
    return out


def outbox(engine: Engine) -> list[OutboxRow]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_history_routing_and_replay(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    ts = transitions([(T0, 0.7), (T0 + 10, 0.4), (T0 + 20, 0.95)])
    assert [t["kind"] for t in ts] == ["pending", "firing", "severity_changed", "resolved"]
    assert n.ingest(ts) == 4
    assert n.ingest(ts) == 0, "a replayed batch adds nothing"
    with Session(engine) as s:
        a = s.scalars(select(AlertRow)).one()
        assert (a.state, a.severity, a.resolved_at) == ("resolved", "critical", datetime.fromtimestamp(T0 + 20, UTC))
        kinds = [e.kind for e in s.scalars(select(AlertEventRow).order_by(AlertEventRow.id))]
    assert kinds == ["pending", "firing", "severity_changed", "resolved"]
    rows = outbox(engine)
    assert [(r.reason, r.target) for r in rows] == [("firing", "am"), ("firing", "hook"), ("severity_changed", "am"),
                                                    ("severity_changed", "hook"), ("resolved", "am"),
                                                    ("resolved", "hook")]
    assert rows[0].payload["severity"] == "warning" and rows[2].payload["severity"] == "critical"


def test_silenced_alert_is_recorded_not_queued(engine: Engine) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    with Session(engine) as s, s.begin():
        s.add(SilenceRow(id="s1", matchers=[{"name": "scope", "value": "team:a", "op": "="}],
                         starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1), created_by="x",
                         comment="maintenance", created_at=now, expired=False))
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7)]) + transitions([(T0, 0.7)], scope="team:b"))
    assert {r.payload["scope"] for r in outbox(engine)} == {"team:b"}
    with Session(engine) as s:
        firing = s.scalars(select(AlertEventRow).where(AlertEventRow.kind == "firing",
                                                       AlertEventRow.scope == "team:a")).one()
        assert firing.detail["silenced_by"] == "s1"
    # the silence ends while it still fires: the next scheduling round delivers it
    with Session(engine) as s, s.begin():
        s.get(SilenceRow, "s1").expired = True  # type: ignore[union-attr]
    n.schedule(T0 + 5)
    assert {r.payload["scope"] for r in outbox(engine)} == {"team:a", "team:b"}


def test_repeats_follow_the_interval_and_alertmanager_gets_resends(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7)]))
    assert n.schedule(T0 + 30) == 0
    assert n.schedule(T0 + 61) == 1  # Alertmanager: every 60 s at least, or it resolves the alert
    assert [r.target for r in outbox(engine) if r.reason == "repeat"] == ["am"]
    n.schedule(T0 + 601)
    assert sorted(r.target for r in outbox(engine) if r.reason == "repeat") == ["am", "am", "hook"]


def test_escalation_of_unacknowledged_critical_alerts(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.4)], scope="team:a") + transitions([(T0, 0.4)], scope="team:b"))
    with Session(engine) as s, s.begin():
        b = s.scalars(select(AlertRow).where(AlertRow.scope == "team:b")).one()
        b.acked_by, b.acked_at = "lead", datetime.fromtimestamp(T0 + 10, UTC)
    n.schedule(T0 + 299)
    assert not [r for r in outbox(engine) if r.target == "pager"]
    n.schedule(T0 + 301)
    n.schedule(T0 + 302)
    pager = [r for r in outbox(engine) if r.target == "pager"]
    assert [(r.reason, r.payload["scope"]) for r in pager] == [("escalation", "team:a")], "once, not for the acked"
    with Session(engine) as s:
        a = s.scalars(select(AlertRow).where(AlertRow.scope == "team:a")).one()
        assert a.escalation_level == 1
        assert s.scalars(select(AlertEventRow).where(AlertEventRow.kind == "escalated")).one().detail["level"] == 1


def test_leases_and_order(engine: Engine) -> None:
    one = Notifier(engine, CONFIG, base_url="http://sqm", owner="one", lease_s=30)
    two = Notifier(engine, CONFIG, base_url="http://sqm", owner="two", lease_s=30)
    one.ingest(transitions([(T0, 0.7), (T0 + 10, 0.4)]))
    claimed = one.claim(T0 + 11)
    # one row per (alert, target): the severity change waits for the firing notification
    assert sorted((r.reason, r.target) for r in claimed) == [("firing", "am"), ("firing", "hook")]
    assert two.claim(T0 + 12) == [], "leased rows are not claimed twice"
    # `one` dies without finishing: after the lease the rows are claimed again (at-least-once)
    again = two.claim(T0 + 11 + 31)
    assert sorted(r.id for r in again) == sorted(r.id for r in claimed)


async def test_failed_delivery_backs_off_and_counts(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm", backoff_max_s=60)
    n.ingest(transitions([(T0, 0.7)]))
    calls: list[tuple[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((str(req.url), json.loads(req.content)))
        return httpx.Response(503 if "hook" in str(req.url) else 200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await n.deliver(client, T0 + 1) == 1
    assert {u for u, _ in calls} == {"http://hook.test/h", "http://am.test/api/v2/alerts"}
    am_body = next(b for u, b in calls if "am.test" in u)
    assert am_body[0]["labels"]["alertname"] == "sl" and am_body[0]["labels"]["severity"] == "warning"
    rows = {r.target: r for r in outbox(engine)}
    assert rows["am"].delivered_at is not None
    assert rows["hook"].delivered_at is None and rows["hook"].attempts == 1 and "HTTP 503" in rows["hook"].last_error
    assert rows["hook"].next_at > datetime.now(UTC)
    with Session(engine) as s:
        stats = {r.target: (r.attempts, r.failures, r.delivered) for r in s.scalars(select(DeliveryStatRow))}
    assert stats == {"am": (1, 0, 1), "hook": (1, 1, 0)}


async def test_rows_for_a_removed_target_are_held_and_delivered_when_it_returns(engine: Engine) -> None:
    Notifier(engine, CONFIG, base_url="http://sqm").ingest(transitions([(T0, 0.7)]))
    # the operator removes "hook" from the notify file and restarts the notifier
    without = NotifyConfig.model_validate({"targets": [t.model_dump() for t in CONFIG.targets if t.name != "hook"],
                                           "routes": [{"targets": ["am"]}]})
    n = Notifier(engine, without, base_url="http://sqm")
    assert n.held() == {"hook": 1}
    sent: list[str] = []
    transport = httpx.MockTransport(lambda req: (sent.append(req.url.host), httpx.Response(200))[1])
    async with httpx.AsyncClient(transport=transport) as client:
        assert await n.deliver(client, T0 + 1) == 1
        assert await n.deliver(client, T0 + 600) == 0, "nothing left that can be attempted"
    assert sent == ["am.test"]
    rows = {r.target: r for r in outbox(engine)}
    assert rows["hook"].delivered_at is None and rows["hook"].attempts == 0 and rows["hook"].last_error is None
    with Session(engine) as s:
        assert s.get(DeliveryStatRow, "hook") is None, "a held row is not a failed delivery"
    # the target is put back: the held notification goes out
    back = Notifier(engine, CONFIG, base_url="http://sqm")
    assert back.held() == {}
    async with httpx.AsyncClient(transport=transport) as client:
        assert await back.deliver(client, T0 + 700) == 1
    assert sent == ["am.test", "hook.test"]


def test_transition_json_round_trip() -> None:
    t = transitions([(T0, 0.7)])[0]
    assert Transition(**t).to_json() == t


def test_retention_deletes_what_ended_long_ago_and_keeps_the_rest(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    done = transitions([(T0, 0.7), (T0 + 10, 0.95)], scope="team:done")  # fired and resolved
    stuck = transitions([(T0, 0.7), (T0 + 10, 0.95)], scope="team:stuck")  # resolved, one notification undelivered
    live = transitions([(T0, 0.7)], scope="team:live")  # still firing
    n.ingest(done + stuck + live)
    with Session(engine) as s, s.begin():
        s.execute(update(OutboxRow).where(OutboxRow.alert_id != stuck[0]["alert_id"])
                  .values(delivered_at=datetime.fromtimestamp(T0 + 11, UTC)))
        s.execute(update(OutboxRow).where(OutboxRow.alert_id == stuck[0]["alert_id"], OutboxRow.reason == "firing")
                  .values(delivered_at=datetime.fromtimestamp(T0 + 11, UTC)))
        for sid, ends in (("old", T0 + 60), ("current", T0 + 200 * 86400)):
            s.add(SilenceRow(id=sid, matchers=[], starts_at=datetime.fromtimestamp(T0, UTC),
                             ends_at=datetime.fromtimestamp(ends, UTC), created_by="x", comment="",
                             created_at=datetime.fromtimestamp(T0, UTC)))
    keep = 90 * 86400
    assert n.purge(T0 + 89 * 86400, keep) == 0, "nothing is old enough yet"
    assert n.purge(T0 + 91 * 86400, keep) == 1
    with Session(engine) as s:
        assert {a.scope for a in s.scalars(select(AlertRow))} == {"team:stuck", "team:live"}
        assert {e.alert_id for e in s.scalars(select(AlertEventRow))} == {stuck[0]["alert_id"], live[0]["alert_id"]}
        assert done[0]["alert_id"] not in {o.alert_id for o in s.scalars(select(OutboxRow))}
        assert [r.id for r in s.scalars(select(SilenceRow))] == ["current"]
    assert n.purge(T0 + 91 * 86400, keep) == 0
