"""The notifier's database work on a real SQLite file and on a real PostgreSQL, with a simulated
clock: history and dedupe, routing, silences, repeats, escalation, leases, ordering, backoff,
parking (of notifications and of transitions the database refuses) and retention. (Real targets:
integration.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.engine import Transition
from alerts.history import AlertRepository, NotificationQuery
from alerts.notifier import Notifier
from alerts.routing import NotifyConfig
from api.app import create_app
from db.schema import AlertEventRow, AlertRow, DeliveryStatRow, OutboxRow, ParkedTransitionRow, SilenceRow
from services.config import Settings
from tests.support.alert_data import SL_RULE, outbox, transitions

T0 = 1_800_000_000.0
ADMIN = "admin-token-for-tests-0123456789"
RULE = SL_RULE
CONFIG = NotifyConfig.model_validate({
    "targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"},
                {"name": "am", "type": "alertmanager", "url": "http://am.test"},
                {"name": "pager", "type": "webhook", "url": "http://pager.test/p"}],
    "routes": [{"match": {"audience": "on-call"}, "targets": ["hook", "am"], "repeat_interval": "10m",
                "escalation": [{"after": "5m", "targets": ["pager"]}]}],
})




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


# -- parking: a notification that cannot go out never blocks the alert's later ones ---------------------
def hook_only() -> NotifyConfig:
    return NotifyConfig.model_validate({"targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"}],
                                        "routes": [{"targets": ["hook"]}]})


async def run_rounds(n: Notifier, handler: Any, times: list[float]) -> list[tuple[str, str]]:
    """Delivery rounds at the given times; returns (reason, status) of each request the target got."""
    got: list[tuple[str, str]] = []

    def record(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        got.append((body["reason"], body["alert"]["scope"]))
        return handler(body)  # type: ignore[no-any-return]

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        for t in times:
            while await n.deliver(client, t):
                pass
    return got


async def test_a_permanent_failure_is_parked_and_the_alerts_next_notification_goes_out(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7), (T0 + 10, 0.4), (T0 + 20, 0.95)]))  # firing, severity_changed, resolved
    got = await run_rounds(n, lambda b: httpx.Response(422 if b["reason"] == "firing" else 200),
                           [T0 + 21, T0 + 22, T0 + 23])
    assert [r for r, _ in got] == ["firing", "severity_changed", "resolved"], "the firing one was tried once"
    rows = {r.reason: r for r in outbox(engine)}
    parked = rows["firing"]
    assert parked.parked_at is not None and parked.delivered_at is None and parked.attempts == 1
    assert parked.last_error is not None and "HTTP 422" in parked.last_error
    assert rows["severity_changed"].delivered_at is not None and rows["resolved"].delivered_at is not None
    stats = AlertRepository(engine).stats()
    assert stats.parked == {"hook": 1} and stats.outbox_depth == {} and stats.outbox_oldest is None
    with Session(engine) as s:
        assert s.get(DeliveryStatRow, "hook").failures == 1  # type: ignore[union-attr]


async def test_a_message_that_cannot_be_built_is_parked_at_once(engine: Engine) -> None:
    chat = NotifyConfig.model_validate({"targets": [{"name": "chat", "type": "slack", "url": "http://chat.test/s"}],
                                        "routes": [{"targets": ["chat"]}]})
    n = Notifier(engine, chat, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7), (T0 + 20, 0.95)]))
    with Session(engine) as s, s.begin():  # e.g. another producer's transition with a value that is no number
        row = s.scalars(select(OutboxRow).where(OutboxRow.reason == "firing")).one()
        row.payload = {**row.payload, "value": "high"}
    sent: list[str] = []
    transport = httpx.MockTransport(lambda req: (sent.append(json.loads(req.content)["text"]), httpx.Response(200))[1])
    async with httpx.AsyncClient(transport=transport) as client:
        assert await n.deliver(client, T0 + 21) == 0
        assert await n.deliver(client, T0 + 22) == 1
    assert len(sent) == 1 and sent[0].startswith("[RESOLVED]")
    firing = next(r for r in outbox(engine) if r.reason == "firing")
    assert firing.parked_at is not None and firing.last_error is not None
    assert firing.last_error.startswith("BuildError: ValueError")


async def test_a_transient_failure_retries_then_parks_after_the_cap(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm", backoff_max_s=60, park_after_s=3600)
    n.ingest(transitions([(T0, 0.7), (T0 + 3000, 0.95)]))  # firing; resolved (queued at T0 + 3000)
    down = lambda b: httpx.Response(503)  # noqa: E731
    await run_rounds(n, down, [T0 + 1, T0 + 100, T0 + 1000])
    [row] = [r for r in outbox(engine) if r.reason == "firing"]
    assert row.parked_at is None and row.attempts == 3, "transient: retried with backoff"
    assert row.next_at == datetime.fromtimestamp(T0 + 1000 + 4, UTC)
    await run_rounds(n, down, [T0 + 3601, T0 + 3602])
    rows = {r.reason: r for r in outbox(engine)}
    assert rows["firing"].parked_at is not None and rows["firing"].last_error is not None
    assert rows["firing"].last_error.startswith("still failing 1 h after it was queued: HttpStatusError")
    assert rows["resolved"].attempts == 1 and rows["resolved"].parked_at is None, "its own clock, not parked"


async def test_parked_notifications_are_retried_on_request_unless_superseded(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm")
    history = AlertRepository(engine)
    n.ingest(transitions([(T0, 0.7)], scope="team:a") + transitions([(T0, 0.7), (T0 + 20, 0.95)], scope="team:b"))
    await run_rounds(n, lambda b: httpx.Response(404 if b["reason"] == "firing" else 200), [T0 + 21, T0 + 22])
    parked, total = history.notifications(NotificationQuery(status="parked"))
    assert total == 2 and {r.payload["scope"] for r in parked} == {"team:a", "team:b"}
    # the target is fixed; team:b's firing notice is obsolete (its resolution went out)
    retried, superseded = history.retry_parked(now=datetime.fromtimestamp(T0 + 30, UTC), target="hook")
    assert [i for i in retried] == [r.id for r in parked if r.payload["scope"] == "team:a"]
    assert superseded == [r.id for r in parked if r.payload["scope"] == "team:b"]
    got = await run_rounds(n, lambda b: httpx.Response(200), [T0 + 31])
    assert got == [("firing", "team:a")]
    a = history.notification(retried[0])
    assert a.delivered_at is not None and a.parked_at is None and a.retried_at is not None
    history.discard_parked(superseded[0])
    assert history.stats().parked == {}


def test_a_transition_the_database_refuses_is_parked_and_the_batch_goes_on(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    a = transitions([(T0, 0.7), (T0 + 10, 0.4), (T0 + 20, 0.95)], scope="team:a")
    b = transitions([(T0, 0.7)], scope="team:b")
    nul = {**a[2], "summary": "bad\x00summary"}  # PostgreSQL: text fields cannot contain NUL
    batch: list[Any] = [a[0], a[1], nul, a[3], {**b[0], "ts": None}, b"{not json", b"[1, 2]",
                        {**b[0], "event_id": "no-sequence"}, *b]
    assert n.ingest(batch) == (5 if engine.dialect.name == "postgresql" else 6)
    assert n.ingest(batch) == 0, "a replay stores nothing twice"
    with Session(engine) as s:
        refused = {r.key: r for r in s.scalars(select(ParkedTransitionRow))}
        alerts = {x.scope: x for x in s.scalars(select(AlertRow))}
        kinds = [e.kind for e in s.scalars(select(AlertEventRow).where(AlertEventRow.scope == "team:a")
                                           .order_by(AlertEventRow.id))]
    assert alerts["team:a"].state == "resolved" and alerts["team:b"].state == "firing"
    assert refused[b[0]["event_id"]].reason.startswith("TypeError")
    assert refused["no-sequence"].reason.startswith("IndexError")
    assert sum(k.startswith("sha1:") for k in refused) == 2  # the two messages that are no transition
    assert any("JSONDecodeError" in r.reason for r in refused.values())
    if engine.dialect.name == "postgresql":
        assert kinds == ["pending", "firing", "resolved"], "the refused severity change was rolled back"
        assert "NUL" in refused[nul["event_id"]].reason and "\\u0000" in refused[nul["event_id"]].transition
        assert len(refused) == 5
    else:
        assert kinds == ["pending", "firing", "severity_changed", "resolved"]
        assert len(refused) == 4
    assert AlertRepository(engine).stats().parked_transitions == len(refused)
    assert {r.payload["scope"] for r in outbox(engine)} == {"team:a", "team:b"}, "the good ones are queued"


def test_retention_takes_parked_notifications_with_their_alert(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7), (T0 + 10, 0.95)]))
    with Session(engine) as s, s.begin():
        s.execute(update(OutboxRow).values(parked_at=datetime.fromtimestamp(T0 + 11, UTC)))
    assert n.held() == {}
    assert n.purge(T0 + 91 * 86400, 90 * 86400) == 1
    assert outbox(engine) == []


async def test_the_notifications_api_lists_retries_and_discards_parked_ones(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7), (T0 + 20, 0.95)], scope="team:a") + transitions([(T0, 0.7)], scope="team:b"))
    await run_rounds(n, lambda b: httpx.Response(410 if b["reason"] == "firing" else 200), [T0 + 21, T0 + 22])
    app = create_app(Settings(admin_token=ADMIN), connect=False)
    app.state.history, app.state.db = AlertRepository(engine), engine
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app, base_url="http://127.0.0.1") as c:
        body = c.get("/v1/notifications", params={"status": "parked"}).json()
        assert body["total"] == 2
        by_scope = {x["alert"]["scope"]: x for x in body["notifications"]}
        a, b = by_scope["team:a"], by_scope["team:b"]
        assert b["status"] == "parked" and b["reason"] == "firing" and "HTTP 410" in b["last_error"]
        assert c.get("/v1/notifications", params={"status": "delivered"}).json()["total"] == 1
        assert c.post("/v1/notifications/retry").status_code == 401
        r = c.post("/v1/notifications/retry", headers=admin)
        assert r.status_code == 200 and r.json() == {"retried": [b["id"]], "superseded": [a["id"]]}
        assert c.post(f"/v1/notifications/{a['id']}/retry", headers=admin).status_code == 409  # superseded
        assert c.post(f"/v1/notifications/{b['id']}/retry", headers=admin).status_code == 409  # pending now
        assert c.get("/v1/notifications", params={"status": "pending"}).json()["notifications"][0]["id"] == b["id"]
        assert c.delete(f"/v1/notifications/{b['id']}", headers=admin).status_code == 409
        assert c.delete(f"/v1/notifications/{a['id']}", headers=admin).status_code == 204
        assert c.delete(f"/v1/notifications/{a['id']}", headers=admin).status_code == 404
        assert c.post("/v1/notifications/99999/retry", headers=admin).status_code == 404
        assert c.post(f"/v1/notifications/{2**40}/retry", headers=admin).status_code == 422
        assert c.get("/v1/notifications", params={"target": "a\x00b"}).status_code == 422
    assert await run_rounds(n, lambda b: httpx.Response(200), [T0 + 30]) == [("firing", "team:b")]
