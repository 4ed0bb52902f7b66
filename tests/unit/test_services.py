"""Wiring without a broker: when the embedded broker starts, demo traffic, settings."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from services.broker import should_start
from services.config import Settings
from services.demo import DemoTraffic
from stream.events import Rejected, decode


def test_embedded_broker_decision() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert should_start(Settings(kafka_bootstrap_servers=f"127.0.0.1:{busy}")) is None  # something listens
        assert should_start(Settings(kafka_bootstrap_servers=f"127.0.0.1:{busy}", embedded_broker="on")) == \
            ("127.0.0.1", busy)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert should_start(Settings(kafka_bootstrap_servers=f"localhost:{free}")) == ("127.0.0.1", free)
    assert should_start(Settings(kafka_bootstrap_servers=f"127.0.0.1:{free}", embedded_broker="off")) is None
    assert should_start(Settings(kafka_bootstrap_servers="kafka.prod.example:9092")) is None


def test_settings_from_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("SQM_TOPIC_PREFIX", "cc.")
    monkeypatch.setenv("SQM_FR_TARGETS", '{"vip": 600, "gold": 3600}')
    s = Settings()
    assert s.source_topics["tickets"] == "cc.tickets" and not s.bootstrap_is_loopback
    assert s.kpi_config.fr_target("gold") == 3600 and s.kpi_config.fr_target("other") == 14400
    assert s.effective_rebalance_timeout == 60.0


def test_demo_traffic_is_valid_and_has_an_incident() -> None:
    # a weekday afternoon (the demo's volume follows the clock: at night a few calls decide the shares)
    start = 1795190400.0  # 2026-11-20 16:00 UTC
    demo = DemoTraffic(start, seed=4)
    events = demo.due(start) + demo.due(start + 60) + demo.due(start + 200)
    now = datetime.fromtimestamp(start + 200, UTC)
    decoded = [decode(orjson.dumps(e), now=now) for e in events if e["ts"] <= orjson.dumps(now).decode()[1:-1]]
    assert decoded and not [d for d in decoded if isinstance(d, Rejected)]
    types = Counter(e["type"] for e in events)
    assert set(types) >= {"ticket.created", "ticket.first_response", "ticket.resolved", "call.offered",
                          "call.answered", "call.ended", "survey.submitted"}
    assert len({e["team"] for e in events}) == 4 and len({e.get("agent") for e in events}) > 20
    inc = demo.incidents[0]
    assert inc.team == "tech" and inc.start - start < 60

    def abandon_share(team: str, during: bool) -> float:
        calls = [e for e in events if e["type"] in ("call.answered", "call.abandoned") and e["team"] == team
                 and inc.active(_t(e["ts"]) - e["wait_s"]) == during]  # decided when the call was offered
        return sum(e["type"] == "call.abandoned" for e in calls) / len(calls)

    assert abandon_share("tech", True) > 0.3 > 10 * abandon_share("tech", False)  # the queue outgrows the roster


def _t(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def test_the_agent_state_map_names_the_contracts_states(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SQM_AGENT_STATE_MAP", '{"Not Ready": "away", "ACW": "after_contact_work"}')
    s = Settings()
    assert s.kpi_config.agent_state_map == {"Not Ready": "away", "ACW": "after_contact_work"}
    assert s.source_topics["agents"] == "sqm.agents"
    monkeypatch.setenv("SQM_AGENT_STATE_MAP", '{"Lunch": "lunch"}')
    with pytest.raises(ValueError, match="agent_state_map"):
        Settings()
