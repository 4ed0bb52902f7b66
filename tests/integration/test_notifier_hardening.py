"""The notifier against bad data and failing peers, all of them real: PostgreSQL (the session server
or a throw-away one this test stops and restarts), the embedded broker, a real SMTP server and an
HTTP webhook sink.

- a transition PostgreSQL refuses (NUL in a text) is parked; the others are stored and delivered
  and the notifier process carries on;
- an e-mail the relay refuses for good (550) is parked and the alert's resolution still goes out;
- Alertmanager takes hostile label values as they are (and label names another producer got wrong);
- the database stopped for 12 s under a running notifier: it does not exit, and every transition
  produced before and during the outage is delivered once it is back;
- /metrics keeps the last alert figures (with their age) while the database refuses connections,
  and says so in the log once;
- the broker unreachable when the notifier starts, and replaced while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from aiosmtpd.controller import Controller
from prometheus_client import generate_latest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.delivery import idempotency_key, send
from alerts.engine import AlertState, step
from alerts.history import AlertRepository, NotificationQuery
from alerts.notifier import Notifier
from alerts.routing import NotifyConfig
from alerts.rules import Rule
from api.metrics import AlertStatsCache, build_registry
from db.engine import connect
from db.schema import ParkedTransitionRow
from services.broker import EmbeddedBroker, free_port
from services.producer import make_producer
from services.topics import ensure_topics
from stream.view import View
from tests.support.peers import Alertmanager, WebhookSink
from tests.support.postgres import ThrowawayPostgres, schema_url
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.integration
REJECT = "REJECTED-BY-THE-RELAY"


def rule(rule_id: str = "sl", **over: Any) -> Rule:
    return Rule.model_validate({"id": rule_id, "kpi": "service_level", "scope": "team:*", "op": "<", "warning": 0.8,
                                "critical": 0.5, "labels": {"audience": "on-call"}, **over})


def transitions(scope: str, readings: list[float], r: Rule | None = None, t0: float | None = None,
                **over: Any) -> list[dict[str, Any]]:
    """The transitions the alert engine publishes for these readings (one a second), with `over` applied."""
    st, out, t0 = AlertState(), [], t0 or time.time()
    for i, v in enumerate(readings):
        st, ts = step(r or rule(), st, v, 100, t0 + i, scope)
        out += [{**t.to_json(), **over} for t in ts]
    return out


def publish(stack: Stack, items: list[dict[str, Any]], bootstrap: str | None = None) -> None:
    settings = stack.settings if bootstrap is None else stack.settings.model_copy(
        update={"kafka_bootstrap_servers": bootstrap})
    producer = make_producer(settings)
    for t in items:
        producer.send(settings.alerts_topic, key=t["alert_id"].encode(), value=orjson.dumps(t))
    producer.flush()
    producer.close()


def hook_notify_file(tmp: Path, hook: WebhookSink) -> Path:
    path = tmp / "notify.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"name": "hook", "type": "webhook", "url": f"{hook.url}/hook"}],
                                    "routes": [{"targets": ["hook"]}]}))
    return path


def heard(hook: WebhookSink) -> list[tuple[str, str]]:
    """(scope, status) of every webhook body, in arrival order."""
    return [(b["alert"]["scope"], b["status"]) for b in hook.bodies("/hook")]


def notifier_stack(broker: EmbeddedBroker, tmp: Path, url: str, hook: WebhookSink) -> Stack:
    return Stack(broker, tmp, SQM_DATABASE_URL=url, SQM_NOTIFY_FILE=str(hook_notify_file(tmp, hook)),
                 SQM_DELIVERY_BACKOFF_MAX_S="1")


# -- (a) poison isolation -------------------------------------------------------------------------------
def test_a_transition_postgresql_refuses_is_parked_and_the_notifier_carries_on(
        broker: EmbeddedBroker, tmp_path: Path, postgres: str) -> None:
    hook = WebhookSink().start()
    with schema_url(postgres) as url:
        stack = notifier_stack(broker, tmp_path, url, hook)
        engine = connect(url)
        try:
            proc = stack.notifier()
            t0 = time.time()
            poison = transitions("team:poison", [0.7], summary="SL\x00 is low")  # text fields refuse NUL
            labelled = transitions("team:labels", [0.7], labels={"audience": "on-call", "note": "a\x00b"})
            publish(stack, transitions("team:a", [0.7], t0=t0) + poison + labelled + transitions("team:b", [0.4]))
            wait_for(lambda: {s for s, _ in heard(hook)} == {"team:a", "team:b", "team:labels"}, 30,
                     "the good transitions delivered", stack)
            with Session(engine) as s:
                parked = {r.key: r for r in s.scalars(select(ParkedTransitionRow))}
            assert set(parked) == {t["event_id"] for t in poison}
            assert all("NUL" in r.reason and r.alert_id == poison[0]["alert_id"] for r in parked.values())
            # a JSON column keeps a NUL (as \u0000): that alert is stored and its labels go out raw
            body = next(b for b in hook.bodies("/hook") if b["alert"]["scope"] == "team:labels")
            assert body["alert"]["labels"]["note"] == "a\x00b"
            assert proc.poll() is None, "the notifier keeps running"
            publish(stack, transitions("team:a", [0.7, 0.95], t0=t0)[-1:])  # team:a resolves
            wait_for(lambda: ("team:a", "resolved") in heard(hook), 30, "a later transition delivered", stack)
            assert "team:poison" not in {s for s, _ in heard(hook)}
            assert proc.poll() is None
        finally:
            stack.stop()
            engine.dispose()
            hook.stop()


# -- (b) a permanent SMTP failure does not block the alert's resolution --------------------------------------
class RejectingSmtp:
    """A real SMTP server (aiosmtpd) that answers 550 to a message containing REJECT (a content filter)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self.refused = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                if REJECT.encode() in envelope.content:
                    sink.refused += 1
                    return "550 5.7.1 message content rejected"
                sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp() -> Iterator[RejectingSmtp]:
    server = RejectingSmtp()
    yield server
    server.controller.stop()


async def test_an_email_refused_for_good_is_parked_and_the_resolution_still_goes_out(
        engine: Engine, smtp: RejectingSmtp) -> None:
    config = NotifyConfig.model_validate({"targets": [{
        "name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
        "from": "sqm@example.com", "to": ["leads@example.com"]}], "routes": [{"targets": ["mail"]}]})
    n = Notifier(engine, config, base_url="http://sqm", backoff_max_s=1)
    flagged = rule("flagged", intervention=f"Call the vendor ({REJECT}).")  # only firing mails carry it
    hostile = "team:ops\r\nBcc: evil@example.com\u2028<!channel> 🚨 中文"
    t0 = time.time()
    n.ingest(transitions("team:spam", [0.7, 0.95], flagged, t0) + transitions(hostile, [0.7, 0.95], t0=t0))
    async with httpx.AsyncClient() as client:
        for i in range(8):
            while await n.deliver(client, t0 + 2 + i):
                pass
    assert smtp.refused == 1, "tried once: a 550 is permanent"
    ops = "[WARNING] sl on team:ops Bcc: evil@example.com <!channel> 🚨 中文"
    assert sorted(smtp.subjects()) == sorted([ops, "[RESOLVED] sl on team:ops Bcc: evil@example.com <!channel> 🚨 中文",
                                              "[RESOLVED] flagged on team:spam"])
    assert all(m.get_all("Bcc") is None for m in smtp.messages)
    [parked], _ = AlertRepository(engine).notifications(NotificationQuery(status="parked"))
    assert parked.reason == "firing" and parked.payload["scope"] == "team:spam"
    assert parked.last_error is not None and "550" in parked.last_error and "content rejected" in parked.last_error


# -- Alertmanager takes hostile values ---------------------------------------------------------------------------
async def test_alertmanager_accepts_hostile_label_values(tmp_path: Path) -> None:
    am = Alertmanager(tmp_path)
    try:
        hostile = "<!channel> & \"quoted\" \u2028 line\nbreak \x00 🚨 中文"
        t = transitions(f"team:{hostile}", [0.7], summary=f"summary {hostile}",
                        labels={"audience": "on-call", "note": hostile, "team-name": "x", "9lives": "y"})[-1]
        alert = {**t, "started_at": t["ts"], "acked_by": None, "escalation_level": 0}
        target = NotifyConfig.model_validate({"targets": [{"name": "am", "type": "alertmanager", "url": am.url}]})
        async with httpx.AsyncClient() as client:
            await send(target.targets[0], alert, "firing", client=client, base_url="http://sqm", timeout=5,
                       now=time.time())
        [got] = await asyncio.to_thread(am.alerts)
        assert got["labels"]["scope"] == f"team:{hostile}" and got["labels"]["note"] == hostile
        assert got["labels"]["team_name"] == "x" and got["labels"]["_9lives"] == "y"
        assert got["annotations"]["summary"] == f"summary {hostile}"
    finally:
        am.stop()


async def test_alertmanager_takes_the_idempotency_key_as_an_annotation_and_keeps_one_alert(tmp_path: Path) -> None:
    """The key changes with each notification (a repeat has its own); as an annotation it does not
    change the alert's identity: Alertmanager still holds one alert, with the latest key."""
    am = Alertmanager(tmp_path)
    try:
        t = transitions("team:ops", [0.7])[-1]
        alert = {**t, "started_at": t["ts"], "acked_by": None, "escalation_level": 0}
        target = NotifyConfig.model_validate({"targets": [{"name": "am", "type": "alertmanager", "url": am.url}]})
        keys = [idempotency_key(t["event_id"], "am"), idempotency_key(f"{t['alert_id']}/repeat/60s/1", "am")]
        async with httpx.AsyncClient() as client:
            for key, reason in zip(keys, ["firing", "repeat"], strict=True):
                await send(target.targets[0], alert, reason, client=client, base_url="http://sqm", timeout=5,
                           now=time.time(), idempotency_key=key)
        [got] = await asyncio.to_thread(am.alerts)
        assert got["annotations"]["idempotency_key"] == keys[1]
        assert "idempotency_key" not in got["labels"]
    finally:
        am.stop()


# -- (c) the database stopped under a running notifier -------------------------------------------------------
def test_the_notifier_rides_out_a_database_outage(broker: EmbeddedBroker, tmp_path: Path) -> None:
    pg = ThrowawayPostgres().start()
    hook = WebhookSink().start()
    stack = notifier_stack(broker, tmp_path, pg.url, hook)
    try:
        proc = stack.notifier()
        t0 = time.time()
        before = [transitions(f"team:b{i}", [0.7], t0=t0) for i in range(3)]
        publish(stack, [t for ts in before for t in ts])
        wait_for(lambda: len(heard(hook)) == 3, 30, "the notifications before the outage", stack)

        pg.stop("fast", remove=False)
        during = transitions("team:b0", [0.7, 0.95], t0=t0)[-1:] + transitions("team:d", [0.4], t0=t0 + 5)
        publish(stack, during)
        time.sleep(12)
        assert proc.poll() is None, "the notifier must not exit while the database is down"
        assert len(heard(hook)) == 3
        pg.restart()
        after = transitions("team:a", [0.7], t0=t0 + 20)
        publish(stack, after)
        expected = sorted([("team:b0", "firing"), ("team:b1", "firing"), ("team:b2", "firing"),
                           ("team:b0", "resolved"), ("team:d", "firing"), ("team:a", "firing")])
        wait_for(lambda: sorted(heard(hook)) == expected, 40, "every notification after the outage", stack)
        time.sleep(2)  # nothing more, nothing twice
        assert sorted(heard(hook)) == expected
        assert heard(hook).index(("team:b0", "firing")) < heard(hook).index(("team:b0", "resolved"))
        assert proc.poll() is None
        log = (tmp_path / "notifier.log").read_text()
        assert log.count("the database is unavailable") == 1, log[-3000:]
        assert log.count("the database is back after") == 1
        assert "Traceback" not in log
    finally:
        stack.stop()
        hook.stop()
        pg.stop("immediate")


# -- /metrics while the database refuses connections -------------------------------------------------------------
class _Feed:
    warm = True
    latest_record_ts = 0.0


def age(text: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("sqm_alert_stats_age_seconds "))


async def test_metrics_serve_the_last_alert_figures_while_the_database_is_down(
        caplog: pytest.LogCaptureFixture) -> None:
    pg = ThrowawayPostgres().start()
    engine = connect(pg.url)
    try:
        Notifier(engine, NotifyConfig(), base_url="http://sqm").ingest(transitions("team:m", [0.4]))
        history = AlertRepository(engine)
        cache = AlertStatsCache(history.stats)
        registry, _ = build_registry(View(60), _Feed(), False, cache)

        async def scrape() -> str:
            await cache.refresh(max_wait=0.05)
            await asyncio.sleep(0.1)  # let a failing read finish
            return generate_latest(registry).decode()

        assert 'sqm_alerts_firing{severity="critical"} 1.0' in await scrape()
        await asyncio.to_thread(pg.stop, "fast", remove=False)
        caplog.set_level(logging.WARNING, logger="api.metrics")
        caplog.clear()
        ages = []
        for _ in range(6):
            text = await scrape()
            assert 'sqm_alerts_firing{severity="critical"} 1.0' in text, "the last figures, not none"
            assert "sqm_view_warm 1.0" in text
            ages.append(age(text))
            await asyncio.sleep(0.2)
        assert ages == sorted(ages) and ages[-1] - ages[0] >= 1.0, ages
        down = [r for r in caplog.records if "not read from the database" in r.getMessage()]
        assert len(down) == 1 and not down[0].exc_info, [r.getMessage() for r in caplog.records]
        await asyncio.to_thread(pg.restart)
        deadline = time.monotonic() + 20
        while cache.failing_since is not None and time.monotonic() < deadline:
            await scrape()
        assert age(await scrape()) < 1.0
        assert sum("read from the database again" in r.getMessage() for r in caplog.records) == 1
        await cache.stop()
    finally:
        engine.dispose()
        pg.stop("immediate")


# -- the broker away at start, then replaced ---------------------------------------------------------------------------
def test_the_notifier_waits_for_the_broker_and_follows_a_new_one(broker: EmbeddedBroker, tmp_path: Path) -> None:
    hook = WebhookSink().start()
    own = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(tmp_path / "own-broker.log"))
    stack = notifier_stack(broker, tmp_path, f"sqlite:///{tmp_path}/sqm.db", hook)
    try:
        proc = stack.start("notifier", "services.notifier", KAFKA_BOOTSTRAP_SERVERS=own.bootstrap)
        # the first topic creation fails once the admin client gives up bootstrapping (about 30 s): the notifier
        # logs the outage and waits instead of exiting (polled, not slept: a loaded machine starts it later)
        wait_for(lambda: "the broker is unavailable" in (tmp_path / "notifier.log").read_text(), 60,
                 "the failed topic creation", stack)
        time.sleep(2)
        assert proc.poll() is None, "no broker yet: the notifier waits"
        own.start()
        wait_for(lambda: "created topics" in (tmp_path / "notifier.log").read_text(), 30, "the topics", stack)
        publish(stack, transitions("team:first", [0.7]), own.bootstrap)
        wait_for(lambda: ("team:first", "firing") in heard(hook), 30, "delivery from the new broker", stack)
        # the broker goes away (memory only: topics and offsets with it) and a new one takes its place
        own.stop()
        time.sleep(3)
        assert proc.poll() is None
        own.start()
        ensure_topics(stack.settings.model_copy(update={"kafka_bootstrap_servers": own.bootstrap}))
        publish(stack, transitions("team:second", [0.7]), own.bootstrap)
        wait_for(lambda: ("team:second", "firing") in heard(hook), 45, "delivery after the broker came back", stack)
        assert proc.poll() is None
        assert heard(hook).count(("team:first", "firing")) == 1
        log = (tmp_path / "notifier.log").read_text()
        assert sum(" kafka" in line or " aiokafka" in line for line in log.splitlines()) < 40, "throttled"
    finally:
        stack.stop()
        own.stop()
        hook.stop()
