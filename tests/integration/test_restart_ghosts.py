"""No ghosts after a restart: the embedded broker starts empty, the database keeps its alerts. Once the
alert engine of the new run has loaded its (empty) state, every alert of the database that it does
not hold is ended with the reason, and the ending reaches the targets that heard of the alert, like a
resolution. Real processes on two real brokers, one database."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from services.broker import EmbeddedBroker, free_port
from services.loadgen import call
from services.webhook_sink import WebhookSink
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
RULES = {"rules": [{"id": "ghost-sl", "kpi": "service_level", "scope": "team:*", "window": "1h", "op": "<",
                    "warning": 0.8, "critical": 0.5, "for": "0s", "min_count": 5, "labels": {"audience": "on-call"},
                    "summary": "SL of {scope} is {value:.0%}",
                    "texts": {"zh-CN": {"summary": "{scope} 的服务水平为 {value:.0%}"}}}]}


def stack_on(broker: EmbeddedBroker, tmp: Path, db: str, hook: WebhookSink) -> Stack:
    tmp.mkdir(exist_ok=True)
    rules, notify = tmp / "rules.yaml", tmp / "notify.yaml"
    rules.write_text(yaml.safe_dump(RULES, allow_unicode=True))
    notify.write_text(yaml.safe_dump({"targets": [{"name": "hook", "type": "webhook", "url": f"{hook.url}/hook"},
                                                  {"name": "chat", "type": "slack", "url": f"{hook.url}/slack",
                                                   "language": "zh-CN"}],
                                      "routes": [{"targets": ["hook", "chat"]}]}))
    return Stack(broker, tmp, SQM_DATABASE_URL=db, SQM_RULES_FILE=str(rules), SQM_NOTIFY_FILE=str(notify),
                 SQM_DELIVERY_BACKOFF_MAX_S="1", SQM_ALERT_FULL_EVAL_S="2", SQM_ALERT_CENSUS_S="2")


def test_a_new_broker_ends_the_alerts_of_the_last_run_and_says_so(broker: EmbeddedBroker, tmp_path: Path) -> None:
    hook = WebhookSink().start()
    db = f"sqlite:///{tmp_path}/kept.db"
    first = stack_on(broker, tmp_path / "run1", db, hook)
    second_broker: EmbeddedBroker | None = None
    second: Stack | None = None
    try:
        first.worker()
        first.notifier()
        first.api()
        now = time.time()
        produce(first, [call("call.answered", now, f"c{i}", team="alpha", agent="a1", queue="q", wait_s=90.0)
                        for i in range(10)])
        wait_for(lambda: httpx.get(first.url + "/v1/alerts", params={"state": "firing"}).json()["total"] == 1, 90,
                 "the alert of the first run", first)
        ghost = httpx.get(first.url + "/v1/alerts", params={"state": "firing"}).json()["alerts"][0]
        assert ghost["texts"]["zh-CN"]["summary"] == "team:alpha 的服务水平为 0%"
        wait_for(lambda: len(hook.bodies("/hook")) == 1 and len(hook.bodies("/slack")) == 1, 30, "firing notices",
                 first)
        assert "team:alpha 的服务水平为 0%" in hook.bodies("/slack")[0]["text"]  # the chat target speaks Chinese
        first.stop()  # Ctrl-C of `make run`: the embedded broker and all it held are gone

        second_broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(tmp_path / "broker2.log")).start()
        second = stack_on(second_broker, tmp_path / "run2", db, hook)
        second.worker()
        second.notifier()
        second.api()
        # still "firing" in the database until the new engine's census says it holds nothing of the kind
        wait_for(lambda: httpx.get(f"{second.url}/v1/alerts/{ghost['id']}").json()["state"] == "resolved", 120,
                 "the ghost ended", second)
        ended = httpx.get(f"{second.url}/v1/alerts/{ghost['id']}").json()
        assert ended["end_reason"].startswith("ended: the alert engine does not hold this alert")
        assert ended["history"][-1]["kind"] == "ended" and ended["live_value"] is None
        assert httpx.get(second.url + "/v1/alerts", params={"state": "firing"}).json()["total"] == 0
        # delivered like a resolution, to both targets, with the reason
        wait_for(lambda: len(hook.bodies("/hook")) == 2 and len(hook.bodies("/slack")) == 2, 30, "the endings",
                 second)
        body = hook.bodies("/hook")[1]
        assert body["status"] == "resolved" and body["alert"]["end_reason"] == ended["end_reason"]
        assert "does not hold" in hook.bodies("/slack")[1]["text"]
        # the same condition in the new run is a new alert, not the old one coming back
        produce(second, [call("call.answered", time.time(), f"d{i}", team="alpha", agent="a1", queue="q", wait_s=90.0)
                         for i in range(10)])
        wait_for(lambda: httpx.get(second.url + "/v1/alerts", params={"state": "firing"}).json()["total"] == 1, 90,
                 "the alert of the second run", second)
        again = httpx.get(second.url + "/v1/alerts", params={"state": "firing"}).json()["alerts"][0]
        assert again["id"] != ghost["id"]
        time.sleep(5)  # censuses (every 2 s here) must not end an alert the engine holds
        assert httpx.get(f"{second.url}/v1/alerts/{again['id']}").json()["state"] == "firing"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        if second_broker is not None:
            second_broker.stop()
        hook.stop()
