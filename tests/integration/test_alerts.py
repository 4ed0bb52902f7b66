"""Alerts end to end on the real broker, real databases and real peers.

events -> worker (KPIs, scope topic, rule evaluation) -> alerts topic -> notifier (history, outbox)
-> webhook / Alertmanager / Slack-compatible hook / SMTP, with the API serving rules, alerts, acks
and silences. SQLite and PostgreSQL (the local server) both run the main scenario.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.broker import EmbeddedBroker
from services.loadgen import call
from stream.scopes import scope_partition
from tests.support.peers import Alertmanager, SmtpSink, WebhookSink
from tests.support.postgres import schema_url
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
TOKEN = "admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sl_rule(team: str = "*", rule_id: str = "it-sl") -> dict[str, Any]:
    return {"id": rule_id, "kpi": "service_level", "scope": f"team:{team}", "window": "5m", "op": "<",
            "warning": 0.8, "critical": 0.5, "clear_margin": 0.05, "for": "2s", "min_count": 5,
            "labels": {"audience": "on-call"}, "summary": "SL of {scope} is {value:.0%}",
            "intervention": "Open the overflow queue."}


def calls(team: str, good: int, bad: int, tag: str) -> list[dict[str, Any]]:
    """Answered calls: `good` within the 20 s service-level threshold, `bad` beyond it."""
    now = time.time()
    return [call("call.answered", now, f"{tag}-{team}-{i}", team=team, agent=f"{team}-a", queue=f"{team}-q",
                 channel="phone", wait_s=3.0 if i < good else 90.0) for i in range(good + bad)]


def _ts(text: str) -> float:
    """An RFC 3339 time of Alertmanager's API as a Unix time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def alerts(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(stack.url + "/v1/alerts", params=params, timeout=10)
    r.raise_for_status()
    return r.json()["alerts"]  # type: ignore[no-any-return]


def one(stack: Stack, **params: Any) -> dict[str, Any] | None:
    found = alerts(stack, **params)
    return found[0] if found else None


def notify_file(tmp: Path, hook: WebhookSink, am: Alertmanager | None, smtp: SmtpSink | None,
                escalate_after: str = "3s") -> Path:
    targets: list[dict[str, Any]] = [
        {"name": "hook", "type": "webhook", "url": f"{hook.url}/hook"},
        {"name": "chat", "type": "slack", "url": f"{hook.url}/slack"},
        {"name": "pager", "type": "webhook", "url": f"{hook.url}/pager"},
    ]
    first = ["hook", "chat"]
    if am is not None:
        targets.append({"name": "am", "type": "alertmanager", "url": am.url, "resend_s": "2s"})
        first.append("am")
    if smtp is not None:
        targets.append({"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                        "from": "sqm@example.com", "to": ["leads@example.com"]})
        first.append("mail")
    doc = {"targets": targets, "routes": [
        {"match": {"audience": "on-call"}, "targets": first, "repeat_interval": "1h",
         "escalation": [{"after": escalate_after, "targets": ["pager"]}]},
    ]}
    path = tmp / "notify.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/alerts.db"
        return
    with schema_url(request.getfixturevalue("postgres")) as url:
        yield url


def alert_stack(broker: EmbeddedBroker, tmp: Path, notify: Path, rules: Path | None = None,
                **env: str) -> Stack:
    if rules is None:
        rules = tmp / "rules.yaml"
        rules.write_text("rules: []\n")
    return Stack(broker, tmp, SQM_ADMIN_TOKEN=TOKEN, SQM_NOTIFY_FILE=str(notify), SQM_RULES_FILE=str(rules),
                 SQM_DELIVERY_BACKOFF_MAX_S="1", SQM_DELIVERY_LEASE_S="3", SQM_ALERT_FULL_EVAL_S="2", **env)


def test_alert_lifecycle_history_and_every_target(broker: EmbeddedBroker, tmp_path: Path, database_url: str) -> None:
    hook = WebhookSink().start()
    am = Alertmanager(tmp_path)
    smtp = SmtpSink().start()
    stack = alert_stack(broker, tmp_path, notify_file(tmp_path, hook, am, smtp), SQM_DATABASE_URL=database_url)
    try:
        stack.worker()
        stack.notifier()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        r = httpx.post(stack.url + "/v1/rules", json=sl_rule(), headers=AUTH)
        assert r.status_code == 201, r.text
        wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 60, "ready", stack)

        # 7 of 10 within threshold: 70 % < 80 % -> warning
        produce(stack, calls("alpha", 7, 3, "w"))
        wait_for(lambda: (a := one(stack, state="firing", scope="team:alpha")) and a["severity"] == "warning",
                 60, "a firing warning", stack)
        # 20 more beyond the threshold: 7/30 -> critical, the same alert
        produce(stack, calls("alpha", 0, 20, "c"))
        wait_for(lambda: (a := one(stack, state="firing", scope="team:alpha")) and a["severity"] == "critical",
                 60, "the alert turning critical", stack)
        firing = alerts(stack, state="firing")
        assert len(firing) == 1
        alert = firing[0]
        assert alert["rule_id"] == "it-sl" and alert["labels"]["audience"] == "on-call"
        # the alert keeps the reading that crossed the line; the worker may fold the 20 calls over more than
        # one batch, so that reading is 7 of n with 7/n < 50 %, i.e. 15 <= n <= 30
        n = alert["count"]
        assert 15 <= n <= 30 and alert["value"] == pytest.approx(7 / n) and alert["threshold"] == 0.5
        assert alert["summary"] == f"SL of team:alpha is {7 / n:.0%}"

        # every target heard of it
        wait_for(lambda: len(hook.bodies("/hook")) >= 2, 30, "webhook firing + severity change", stack)
        first = hook.bodies("/hook")[0]
        assert first["status"] == "firing" and first["alert"]["severity"] == "warning"
        assert first["alert"]["intervention"] == "Open the overflow queue."
        assert hook.bodies("/hook")[1]["alert"]["severity"] == "critical"
        assert "it-sl on team:alpha" in hook.bodies("/slack")[0]["text"]
        wait_for(lambda: len(smtp.messages) >= 2, 30, "e-mails", stack)
        assert smtp.messages[0]["Subject"] == "[WARNING] it-sl on team:alpha"
        assert "Open the overflow queue." in smtp.messages[0].get_payload()

        def in_alertmanager() -> dict[str, Any] | None:
            found = [a for a in am.alerts() if a["labels"].get("alertname") == "it-sl"]
            return found[0] if found and found[0]["labels"]["severity"] == "critical" else None

        wait_for(in_alertmanager, 30, "the alert in Alertmanager", stack)
        got = in_alertmanager()
        assert got is not None
        assert got["labels"]["scope"] == "team:alpha" and got["labels"]["audience"] == "on-call"
        assert got["status"]["state"] == "active"
        assert got["annotations"]["description"] == "Open the overflow queue."

        # not acknowledged within 3 s: escalated to the pager; then acknowledged
        wait_for(lambda: hook.bodies("/pager"), 30, "escalation to the next level", stack)
        assert hook.bodies("/pager")[0]["reason"] == "escalation"
        assert httpx.post(f"{stack.url}/v1/alerts/{alert['id']}/ack").status_code == 401
        r = httpx.post(f"{stack.url}/v1/alerts/{alert['id']}/ack", json={"note": "on it"}, headers=AUTH)
        # who acknowledged is the credential's name (`token` for SQM_ADMIN_TOKEN), never a field the caller sets
        assert r.status_code == 200 and r.json()["acked_by"] == "token", r.text
        assert r.json()["follow_up"]["readings"][0]["after_s"] == 0
        again = httpx.post(f"{stack.url}/v1/alerts/{alert['id']}/ack", headers=AUTH)
        assert again.status_code == 409 and "acknowledged by token" in again.json()["detail"]

        # Alertmanager keeps it while we re-send (resend 2 s): still active past the endsAt it showed above
        # (3 resend periods after the send it had then), which only a later re-send can move
        time.sleep(max(0.0, _ts(got["endsAt"]) + 1.0 - time.time()))
        assert in_alertmanager() is not None

        # recovery: 300 good calls -> 307/330 = 93 % >= 85 % (clear level): resolved
        produce(stack, calls("alpha", 300, 0, "g"))
        wait_for(lambda: one(stack, state="resolved", scope="team:alpha"), 60, "resolution", stack)
        wait_for(lambda: any(b["status"] == "resolved" for b in hook.bodies("/hook")), 30, "webhook resolved", stack)
        wait_for(lambda: not [a for a in am.alerts() if a["labels"].get("alertname") == "it-sl"], 30,
                 "Alertmanager resolving it", stack)
        wait_for(lambda: len(smtp.messages) >= 3 and smtp.messages[-1]["Subject"].startswith("[RESOLVED]"), 30,
                 "resolved e-mail", stack)

        # the history holds every transition, the acknowledgement and the escalation, in order
        detail = httpx.get(f"{stack.url}/v1/alerts/{alert['id']}").json()
        kinds = [h["kind"] for h in detail["history"]]
        assert kinds[:3] == ["pending", "firing", "severity_changed"] and kinds[-1] == "resolved", kinds
        assert {"escalated", "acknowledged"} <= set(kinds)
        ack = next(h for h in detail["history"] if h["kind"] == "acknowledged")
        assert {k: ack["detail"][k] for k in ("by", "note")} == {"by": "token", "note": "on it"}
        assert ack["detail"]["count"] > 0  # the rule's KPI at the acknowledgement (the follow-up's first reading)
        # filters
        sev = detail["severity"]  # the last severity: it may have stepped down to warning on the way back
        other = "warning" if sev == "critical" else "critical"
        assert [a["id"] for a in alerts(stack, severity=sev, state="resolved")] == [alert["id"]]
        assert alerts(stack, severity=other, state="resolved") == [] == alerts(stack, state="firing")
        assert [a["id"] for a in alerts(stack, scope="team:*", state="resolved")] == [alert["id"]]
        assert alerts(stack, scope="team:beta") == []
        assert alerts(stack, since="2099-01-01T00:00:00Z") == []
        assert len(alerts(stack, until="2099-01-01T00:00:00Z")) == 1
        # the alert figures of /metrics come from a read of the database that the first scrape starts and
        # waits for only briefly (api/metrics.py): scrape until they are there
        wait_for(lambda: "sqm_alerts_firing{severity=critical}" in stack.metrics(), 30, "the alert figures", stack)
        m = stack.metrics()
        assert m["sqm_alerts_firing{severity=critical}"] == 0
        assert m["sqm_alert_delivery_attempts_total{target=hook}"] >= 3
        assert m["sqm_alert_outbox_depth{}"] == 0
    finally:
        stack.stop()
        hook.stop()
        am.stop()
        smtp.stop()


def test_target_down_then_up_and_notifier_killed_loses_nothing(broker: EmbeddedBroker, tmp_path: Path) -> None:
    hook = WebhookSink()  # down: nothing listens on its port yet
    stack = alert_stack(broker, tmp_path, notify_file(tmp_path, hook, None, None, escalate_after="1h"))
    try:
        stack.worker()
        stack.notifier()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        teams = [f"team{i}" for i in range(4)]
        for t in teams:
            assert httpx.post(stack.url + "/v1/rules", json=sl_rule(t, f"sl-{t}"), headers=AUTH).status_code == 201
        wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 60, "ready", stack)
        for t in teams:
            produce(stack, calls(t, 0, 10, "d"))
        wait_for(lambda: len(alerts(stack, state="firing")) == 4, 60, "four firing alerts", stack)

        def failures() -> float:
            return stack.metrics().get("sqm_alert_delivery_failures_total{target=hook}", 0)

        wait_for(lambda: failures() >= 4, 30, "failed deliveries while the target is down", stack)
        assert stack.metrics()["sqm_alert_outbox_depth{}"] >= 4
        stack.kill("notifier")  # kill -9 with deliveries pending
        hook.start()  # the target comes back while no notifier runs
        stack.notifier("notifier2")
        wait_for(lambda: {b["alert"]["scope"] for b in hook.bodies("/hook")} == {f"team:{t}" for t in teams}, 60,
                 "every alert delivered after the restart", stack)
        assert all(b["status"] == "firing" for b in hook.bodies("/hook"))
        wait_for(lambda: stack.metrics()["sqm_alert_outbox_depth{}"] == 0, 30, "an empty outbox", stack)
    finally:
        stack.stop()
        hook.stop()


def test_two_alert_workers_split_the_evaluation_and_a_killed_one_hands_its_alerts_over(broker: EmbeddedBroker,
                                                                                       tmp_path: Path) -> None:
    """The split roles: one KPI worker, two alert workers (their own consumer group)."""
    hook = WebhookSink().start()
    notify = tmp_path / "notify.yaml"
    notify.write_text(yaml.safe_dump({"targets": [{"name": "hook", "type": "webhook", "url": f"{hook.url}/hook"}],
                                      "routes": [{"match": {"audience": "on-call"}, "targets": ["hook"]}]}))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [sl_rule()]}))
    stack = alert_stack(broker, tmp_path, notify, rules)
    n = stack.settings.partitions
    # one team per scope partition, so that both workers have alerts to evaluate
    teams = list({scope_partition(f"team:h{i}", n): f"h{i}" for i in range(200)}.values())
    assert len(teams) == n

    def evaluating(worker: str) -> float:
        return stack.metrics().get(f"sqm_worker_alert_partitions{{worker={worker}}}", 0)

    try:
        stack.worker("k1", role="kpis")
        stack.worker("w1", role="alerts")
        stack.worker("w2", role="alerts")
        stack.notifier()
        stack.api()
        wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 60, "ready", stack)
        wait_for(lambda: evaluating("w1") > 0 and evaluating("w2") > 0 and evaluating("w1") + evaluating("w2") == n,
                 120, "the scope partitions split between both alert workers", stack)
        m = stack.metrics()
        assert m["sqm_worker_alert_partitions{worker=k1}"] == 0, "the KPI worker evaluates no alerts"
        assert m["sqm_worker_assigned_partitions{worker=k1}"] == n, "the KPI worker folds every source partition"
        assert m["sqm_worker_assigned_partitions{worker=w1}"] == m["sqm_worker_assigned_partitions{worker=w2}"] == 0
        produce(stack, [c for t in teams for c in calls(t, 3, 7, "bad")])  # 30 %: critical
        wait_for(lambda: len(alerts(stack, state="firing")) == n, 60, "one firing alert per team", stack)
        firing = {a["scope"]: a["id"] for a in alerts(stack, state="firing")}
        assert set(firing) == {f"team:{t}" for t in teams}
        wait_for(lambda: len(hook.bodies("/hook")) >= n, 30, "the notifications", stack)
        time.sleep(3)  # a second evaluator of the same scope would show up here as a second alert
        assert sorted(b["alert"]["alert_id"] for b in hook.bodies("/hook")) == sorted(firing.values())

        stack.kill("w1")  # SIGKILL: its scope partitions and their alert state move to w2
        wait_for(lambda: evaluating("w2") == n, 120, "w2 evaluating every scope partition", stack)
        produce(stack, [c for t in teams for c in calls(t, 300, 0, "good")])  # 303 / 310: clear
        wait_for(lambda: len(alerts(stack, state="resolved")) == n, 60, "every alert resolved", stack)
        # the same alerts resolved: w2 took the state over instead of raising new alerts
        assert {a["scope"]: a["id"] for a in alerts(stack, state="resolved")} == firing
        assert len(alerts(stack)) == n
        wait_for(lambda: sum(b["status"] == "resolved" for b in hook.bodies("/hook")) == n, 30,
                 "the resolved notifications", stack)
    finally:
        stack.stop()
        hook.stop()


def test_rules_api_file_rules_and_silences(broker: EmbeddedBroker, tmp_path: Path) -> None:
    hook = WebhookSink().start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [
        {**sl_rule("gamma", "file-sl")},
        {"id": "broken", "kpi": "csat", "op": "<", "warning": 0.8, "window": "2h"},
    ]}))
    stack = alert_stack(broker, tmp_path, notify_file(tmp_path, hook, None, None, escalate_after="1h"), rules)
    try:
        stack.worker()
        stack.notifier()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        body = httpx.get(stack.url + "/v1/rules").json()
        assert [(r["source"], r["rule"]["id"]) for r in body["rules"]] == [("file", "file-sl")]
        assert body["errors"][0]["rule_id"] == "broken"
        assert "window: unknown window '2h'" in body["errors"][0]["errors"][0]
        assert "rules[1] (broken)" in body["errors"][0]["where"]
        # writes: auth, validation with where and what, file rules read-only
        assert httpx.post(stack.url + "/v1/rules", json=sl_rule("x", "api-1")).status_code == 401
        bad = httpx.post(stack.url + "/v1/rules", json={**sl_rule("x", "api-1"), "op": "=="}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["detail"][0].startswith("op:")
        assert httpx.put(stack.url + "/v1/rules/file-sl", json=sl_rule("x", "file-sl"), headers=AUTH).status_code == 409
        assert httpx.post(stack.url + "/v1/rules", json=sl_rule("delta", "api-1"), headers=AUTH).status_code == 201
        changed = {**sl_rule("delta", "api-1"), "warning": 0.9}
        r = httpx.put(stack.url + "/v1/rules/api-1", json=changed, headers=AUTH)
        assert r.status_code == 200 and r.json()["rule"]["warning"] == 0.9
        assert httpx.get(stack.url + "/v1/rules/api-1").json()["rule"]["warning"] == 0.9
        r = httpx.post(stack.url + "/v1/rules", json=sl_rule("delta", "api-2"), headers=AUTH)
        assert r.status_code == 201
        assert httpx.delete(stack.url + "/v1/rules/api-2", headers=AUTH).status_code == 204
        assert httpx.get(stack.url + "/v1/rules/api-2").status_code == 404

        # silence team:gamma: its alert is recorded, not delivered; team:delta's is delivered
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        r = httpx.post(stack.url + "/v1/silences", headers=AUTH, json={
            "matchers": [{"name": "scope", "value": "team:gamma"}], "ends_at": until,
            "created_by": "lead-ana", "comment": "planned maintenance of the gamma line"})
        assert r.status_code == 201, r.text
        silence = r.json()
        assert silence["status"] == "active"
        wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 60, "ready", stack)
        produce(stack, calls("gamma", 0, 10, "s") + calls("delta", 0, 10, "s"))
        wait_for(lambda: len(alerts(stack, state="firing")) == 2, 60, "two firing alerts", stack)
        wait_for(lambda: hook.bodies("/hook"), 30, "the unsilenced alert delivered", stack)
        time.sleep(3)  # a few delivery rounds
        assert {b["alert"]["scope"] for b in hook.bodies("/hook")} == {"team:delta"}
        gamma = one(stack, scope="team:gamma")
        assert gamma is not None and gamma["silenced_by"] == silence["id"]
        history = httpx.get(f"{stack.url}/v1/alerts/{gamma['id']}").json()["history"]
        assert next(h for h in history if h["kind"] == "firing")["detail"]["silenced_by"] == silence["id"]
        listed = httpx.get(stack.url + "/v1/silences").json()
        assert listed[0]["id"] == silence["id"] and listed[0]["matching_alerts"] == 1
        # the silence ends early: the still-firing alert is delivered now
        assert httpx.delete(f"{stack.url}/v1/silences/{silence['id']}", headers=AUTH).status_code == 204
        wait_for(lambda: "team:gamma" in {b["alert"]["scope"] for b in hook.bodies("/hook")}, 30,
                 "delivery once the silence is gone", stack)
    finally:
        stack.stop()
        hook.stop()
