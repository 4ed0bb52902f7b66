"""Poison input through a running stack: 10,000 malformed messages of every kind mixed with 2,000 good
events. No process restarts, every good event is counted, every bad one is dead-lettered with its
reason (the reason each one must get is stated here, not computed by the code under test)."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer

from services.broker import EmbeddedBroker
from services.loadgen import agent_state, call, iso, random_stream, survey, ticket
from tests.support import oracle
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
DAY = 86400.0


def poison_kinds(now: float) -> list[tuple[str, str, Callable[[int], bytes]]]:
    """(expected reason, topic kind, message factory by index)."""
    def j(ev: dict[str, Any]) -> bytes:
        return orjson.dumps(ev)

    def t(i: int, **kw: Any) -> dict[str, Any]:
        return {**ticket("ticket.created", now, now - 60, f"pt{i}"), **kw}

    def c(i: int, **kw: Any) -> dict[str, Any]:
        return {**call("call.ended", now, f"pc{i}", agent="a1", talk_s=60.0, hold_s=0.0, wrap_s=5.0,
                       resolved=True), **kw}

    return [
        ("not_json", "tickets", lambda i: b"\xff" + random.Random(i).randbytes(40)),
        ("not_json", "calls", lambda i: j(c(i))[: 10 + i % 50]),
        ("not_object", "surveys", lambda i: j([i, "x"])),
        ("unknown_type", "calls", lambda i: j({**c(i), "type": "call.teleported"})),
        ("wrong_topic", "tickets", lambda i: j(c(i))),
        ("future_ts", "tickets", lambda i: j(t(i, ts=iso(now + 3600), created_at=iso(now)))),
        ("oversize", "surveys", lambda i: j({**survey(now, f"ps{i}", csat=5), "pad": "p" * 70_000})),
        ("invalid", "tickets", lambda i: j(t(i, team=f"team\u0000{i}"))),
        ("invalid", "calls", lambda i: j(c(i, agent=f"a\u2028{i}"))),
        ("invalid", "calls", lambda i: j(c(i, queue=f"q\u202e{i}"))),
        ("invalid", "tickets", lambda i: j(t(i, event_id="e" * 129))),
        ("invalid", "tickets", lambda i: j(t(i, team="   "))),
        ("invalid", "calls", lambda i: j(c(i, talk_s=1e308))),
        ("invalid", "calls", lambda i: j(c(i, wrap_s=8 * DAY))),
        ("invalid", "calls", lambda i: j(c(i, hold_s="12"))),
        ("invalid", "tickets", lambda i: j({**ticket("ticket.resolved", now, now - 60, f"pt{i}", agent="a1",
                                                     contacts=5000)})),
        ("invalid", "tickets", lambda i: j(t(i, created_at="9999-12-31T23:59:59Z"))),
        ("invalid", "tickets", lambda i: j(t(i, created_at=iso(now - 500 * DAY)))),
        ("invalid", "surveys", lambda i: j(survey(now, f"ps{i}", csat=9))),
        ("invalid", "surveys", lambda i: j(survey(now, f"ps{i}", csat=1, comment="bad\u0000"))),
        ("invalid", "agents", lambda i: j(agent_state(now, f"pa{i}", "Lunch"))),  # not one of the five, not mapped
        ("invalid", "agents", lambda i: j(agent_state(now, f"pa{i}", "on_contact",
                                                                 queues=[f"q{k}" for k in range(51)]))),
        ("invalid", "agents", lambda i: j(agent_state(now, f"pa{i}", "away", reason="r" * 65))),
        ("wrong_topic", "agents", lambda i: j(t(i))),
        ("wrong_topic", "calls", lambda i: j(agent_state(now, f"pa{i}", "away"))),
    ]


@pytest.fixture
def stack(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(broker, tmp_path, SQM_AGENT_STATE_MAP='{"Not Ready": "away"}')
    yield s
    s.stop()


def test_ten_thousand_malformed_messages_among_good_ones(stack: Stack) -> None:
    now = time.time()
    rnd = random.Random(10)
    good = random_stream(2000, now, seed=10)
    # agent events, one a vendor name that the stack's state map (SQM_AGENT_STATE_MAP) turns into `away`
    states = ["available", "on_contact", "after_contact_work", "Not Ready", "offline"] * 20
    agent_events = [agent_state(now - 30 + i % 20, f"a{i % 7}", s) for i, s in enumerate(states)]
    agents = [("agents", orjson.dumps(e)) for e in agent_events]
    as_mapped = [{**e, "state": "away" if e["state"] == "Not Ready" else e["state"]} for e in agent_events]
    kinds = poison_kinds(now)
    bad = []
    for i in range(10_000):
        reason, kind, make = kinds[i % len(kinds)]
        bad.append((reason, kind, make(i)))
    mixed: list[Any] = list(good) + agents
    for _, kind, raw in bad:
        mixed.insert(rnd.randrange(len(mixed) + 1), (kind, raw))
    stack.worker()
    api = stack.api()
    worker = stack.procs["w1"]
    produce(stack, mixed, batched=True)  # nothing here reads end offsets or lag
    wait_for(lambda: stack.seen_messages() >= len(mixed), 180, f"{len(mixed)} messages in the view", stack)
    time.sleep(1.0)
    assert worker.poll() is None and api.poll() is None, "no process died"

    m = stack.metrics()
    assert sum(v for k, v in m.items() if k.startswith("sqm_events_total")) == len(good) + len(agents)
    dead = {k.split("reason=")[1].rstrip("}"): int(v) for k, v in m.items() if k.startswith("sqm_deadletter_total")}
    want = Counter(reason for reason, _, _ in bad)
    assert {k: v for k, v in dead.items() if v} == dict(want)
    body = httpx.get(stack.url + "/v1/kpis", params={"scope": "all", "window": "1h"}).json()
    got = {k: {"value": v["value"], "count": v["count"]} for k, v in body["kpis"].items()}
    want_k = oracle.kpis(good, "all", "1h", now)
    # time in state counts to the request time: the agents' shares at the answer's as_of (milliseconds)
    as_of = oracle._t(body["as_of"])
    for name, (value, count, _) in oracle.agent_shares(as_mapped, "all", (as_of - 3600) // 60 * 60, as_of).items():
        del want_k[name]
        assert abs(got[name]["count"] - count) <= 1 and (value is None) == (got[name]["value"] is None), name
        assert value is None or abs(got[name]["value"] - value) < 1e-4, (name, got[name], value)
    oracle.assert_matches(got, want_k, "all/1h")

    # the view counted every dead letter, so they are all in the topic: read that many (the timeout only ends a
    # read that is stuck short), then make sure that nothing follows them, instead of iterating until 5 s of silence
    consumer = KafkaConsumer(stack.settings.deadletter_topic, bootstrap_servers=stack.settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=30_000)
    letters = list(itertools.islice(consumer, len(bad)))
    more = [m for msgs in consumer.poll(timeout_ms=1000).values() for m in msgs]
    consumer.close()
    assert len(letters) == len(bad) and more == []
    by_reason = Counter(dict(msg.headers)["sqm-reason"].decode() for msg in letters)
    assert by_reason == want
    assert all(dict(msg.headers)["sqm-detail"] for msg in letters)
    details = [dict(msg.headers)["sqm-detail"].decode() for msg in letters]
    assert any("control character" in d for d in details) and any("created_at" in d for d in details)
