"""End to end on the real embedded broker: producers -> worker(s) -> state topic -> API, against the oracle."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer

from services.loadgen import agent_state, call, lifecycles, random_stream, survey, ticket
from stream.erlang import required_agents
from tests.support import oracle
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
SCOPES = ["all", "team:billing", "team:tech", "agent:a2", "channel:phone", "channel:chat", "tier:vip",
          "tier:standard", "queue:q1", "queue:q2"]
WINDOWS = ["5m", "15m", "1h", "24h"]


def bad_messages(now: float) -> list[tuple[str, bytes]]:
    """(topic kind, raw) of every kind of contract breach."""
    return [
        ("tickets", b"\x00\xff\xfe not json at all"),
        ("tickets", b"[1, 2, 3]"),
        ("calls", b'{"type": "call.teleported", "event_id": "x1"}'),
        ("surveys", orjson.dumps(survey(now, "s-bad", csat=9))),
        ("surveys", orjson.dumps(survey(now, "s-bad2", nps=-1))),
        ("calls", orjson.dumps(call("call.answered", now, "c-bad", agent="a", wait_s="12"))),
        ("tickets", orjson.dumps({**ticket("ticket.created", now, now, "t-bad"), "ts": "yesterday"})),
        ("tickets", orjson.dumps(ticket("ticket.created", now + 3600, now, "t-future"))),
        ("surveys", orjson.dumps(survey(now, "s-huge", csat=5, comment="x" * 3000, pad="p" * 70000))),
        ("tickets", orjson.dumps(survey(now, "s-wrong-topic", csat=5))),
    ]


BAD_CACHE: dict[float, list[tuple[str, bytes]]] = {}


def mixed_stream(now: float, n: int, seed: int) -> tuple[list[dict[str, Any]], list[Any], int]:
    """Valid events, then the same with redeliveries and bad messages mixed in."""
    rnd = random.Random(seed)
    events = random_stream(n, now, seed=seed)
    late = [ticket("ticket.created", now - 90000, now - 90000, f"late{i}") for i in range(5)]
    bad = list(BAD_CACHE.setdefault(now, bad_messages(now)))
    mixed: list[Any] = []
    for ev in events:
        mixed.append(ev)
        if rnd.random() < 0.08:
            mixed.append(dict(ev))
        if rnd.random() < 0.01 and bad:
            mixed.append(bad.pop())
    mixed.extend(bad + late)
    return events, mixed, len(mixed)  # every message: valid (late included), duplicate or dead-lettered


def agent_stream(now: float, n: int, seed: int) -> list[dict[str, Any]]:
    """Agent states of 12 agents, a tenth of them out of order by up to two minutes."""
    rnd = random.Random(seed)
    states = ["available", "on_contact", "after_contact_work", "away", "offline"]
    out = []
    for i in range(n):
        ts = now - 600 + i * 500 / n - (rnd.uniform(0, 120) if rnd.random() < 0.1 else 0)
        state = rnd.choice(states)
        extra: dict[str, Any] = {"team": rnd.choice(["billing", "tech"])}
        if state == "away":
            extra["reason"] = rnd.choice(["break", "lunch"])
        if rnd.random() < 0.3:
            extra["queues"] = rnd.choice([["q1"], ["q1", "q2"], []])
        out.append(agent_state(ts, f"ag{rnd.randrange(12)}", state, **extra))
    return out


def assert_agents(stack: Stack, events: list[dict[str, Any]]) -> None:
    """The live agent figures and GET /v1/agents against the oracle (workforce.md)."""
    at = time.time()
    for scope in ("all", "team:billing", "team:tech", "queue:q1", "queue:q2"):
        got, want = stack.kpis(scope, "5m"), oracle.live(events, scope, at)
        for name in [k for k in want if k.startswith(("agents_", "longest_a"))]:
            assert got[name]["count"] == want[name][1], (scope, name, got[name], want[name])
    # time in state up to the request time (workforce.md): the oracle at the answer's as_of (milliseconds)
    for scope in ("all", "team:tech", "queue:q1"):
        for window, w in (("5m", 300), ("1h", 3600)):
            body = httpx.get(stack.url + "/v1/kpis", params={"scope": scope, "window": window}).json()
            as_of = oracle._t(body["as_of"])
            want_t = oracle.agent_shares(events, scope, (as_of - w) // 60 * 60, as_of)
            for name, (value, count, _) in want_t.items():
                got_t = body["kpis"][name]
                assert abs(got_t["count"] - count) <= 1, (scope, window, name, got_t, count)
                assert (value is None and got_t["value"] is None) or abs(got_t["value"] - value) < 1e-4, \
                    (scope, window, name, got_t, value)
    listed = httpx.get(stack.url + "/v1/agents", params={"scope": "all"}).json()["agents"]
    want_agents = oracle.agents(events)
    assert {a["agent"]: (a["state"], a["reason"], tuple(a["queues"])) for a in listed} == \
        {n: (a["state"], a["reason"], a["queues"]) for n, a in want_agents.items()}


def assert_oracle(stack: Stack, events: list[dict[str, Any]], now: float) -> None:
    for scope in SCOPES:
        for window in WINDOWS:
            want = oracle.kpis(events, scope, window, now)
            for name in ("occupancy", "away_share"):  # they count to the request time: assert_agents
                if want[name][0] is not None:
                    del want[name]
            oracle.assert_matches(stack.kpis(scope, window), want, f"{scope}/{window}")
    assert_voice(stack, events, now)


def assert_voice(stack: Stack, events: list[dict[str, Any]], now: float) -> None:
    """/v1/comments lists every comment of the last 24 h with the scorer's reading, and /v1/topics counts
    the negative and neutral ones per topic (voice.md), exactly, through the broker and any restart."""
    said = {e["survey_id"]: (e, v) for e in oracle.unique(events) if e["type"] == "survey.submitted"
            and now - 86400 < oracle._t(e["ts"]) and (v := oracle.voice(e)) is not None}
    assert len(said) > 10
    for scope in ("all", "team:billing"):
        mine = {sid: ev for sid, ev in said.items() if scope in oracle.scopes(ev[0])}
        got = httpx.get(stack.url + "/v1/comments", params={"scope": scope, "limit": 500}).json()["comments"]
        assert {c["survey_id"]: (c["comment"], c["sentiment"], c["label"], tuple(c["topics"]), c["mismatch"])
                for c in got} == {sid: (e["comment"], v.sentiment, v.label, v.topics, oracle.mismatch(v.label, e))
                                  for sid, (e, v) in mine.items()}, scope
        topics = httpx.get(stack.url + "/v1/topics", params={"scope": scope, "window": "24h", "limit": 50}).json()
        want = Counter(t for _, v in mine.values() for t in v.topics)
        listed = {t["topic"]: t["count"] for t in topics["topics"]}
        assert len(listed) == min(50, len(want)) and all(want[k] == n for k, n in listed.items()), scope
        assert sorted(listed.values(), reverse=True) == sorted(want.values(), reverse=True)[:50], scope
        assert topics["comments_negative_neutral"] == sum(v.label != "positive" for _, v in mine.values())


def test_stream_with_duplicates_and_bad_messages_matches_oracle(stack: Stack) -> None:
    now = time.time()
    events, mixed, counted = mixed_stream(now, 3000, seed=1)
    stack.worker()
    stack.api()
    produce(stack, mixed)
    wait_for(lambda: stack.seen_messages() >= counted, 90, f"{counted} messages in the view", stack)
    assert_oracle(stack, events, now)
    m = stack.metrics()
    assert m["sqm_late_events_total{}"] == 5
    assert m["sqm_duplicate_events_total{}"] == len([e for e in mixed if isinstance(e, dict)]) - len(events) - 5
    dead = {k: v for k, v in m.items() if k.startswith("sqm_deadletter_total")}
    bad = BAD_CACHE[now]
    assert sum(dead.values()) == len(bad)
    assert dead["sqm_deadletter_total{reason=future_ts}"] == 1
    assert dead["sqm_deadletter_total{reason=oversize}"] == 1
    # every rejected message is on the dead-letter topic, original bytes + reason + coordinates
    consumer = KafkaConsumer(stack.settings.deadletter_topic, bootstrap_servers=stack.settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    letters = list(consumer)
    consumer.close()
    assert len(letters) == len(bad)
    originals = {raw for _, raw in bad}
    for msg in letters:
        h = dict(msg.headers)
        assert msg.value in originals
        assert h["sqm-reason"] and h["sqm-source-topic"].startswith(stack.prefix.encode())
        assert int(h["sqm-source-offset"]) >= 0 and int(h["sqm-source-partition"]) == msg.partition
    ready = httpx.get(stack.url + "/readyz").json()
    assert ready["ready"] is True, ready


def test_kill_9_mid_stream_then_restart_matches_oracle(stack: Stack) -> None:
    now = time.time()
    events, mixed, counted = mixed_stream(now, 4000, seed=2)
    agents = agent_stream(now, 600, seed=2)
    interleaved = [m for pair in zip(mixed[:len(agents)], agents, strict=True) for m in pair]
    events, mixed, counted = events + agents, interleaved + mixed[len(agents):], counted + len(agents)
    stack.worker()
    stack.api()
    half = len(mixed) // 2
    produce(stack, mixed[:half])
    wait_for(lambda: stack.seen_messages() >= half // 3, 60, "the worker to be mid-stream", stack)
    stack.kill("w1")  # SIGKILL: no flush, no commit
    produce(stack, mixed[half:])
    stack.worker("w1b")
    wait_for(lambda: stack.seen_messages() >= counted, 120, f"{counted} messages after restart", stack)
    time.sleep(1.0)  # anything counted twice would show up now
    assert stack.seen_messages() == counted
    assert_oracle(stack, events, now)
    assert_agents(stack, events)


def test_two_workers_share_partitions_and_agree_with_oracle(stack: Stack) -> None:
    now = time.time()
    events, mixed, counted = mixed_stream(now, 3000, seed=3)
    stack.worker("wa")
    stack.worker("wb")
    stack.api()

    def split() -> bool:
        hb = httpx.get(stack.url + "/readyz").json()
        return hb["detail"]["workers"] == 2 and hb["ready"]

    wait_for(split, 90, "two workers with all partitions", stack)
    produce(stack, mixed)
    wait_for(lambda: stack.seen_messages() >= counted, 90, f"{counted} messages", stack)
    assert_oracle(stack, events, now)
    m = stack.metrics()
    parts = [v for k, v in m.items() if k.startswith("sqm_worker_assigned_partitions")]
    assert sorted(parts) == [3, 3], parts


def test_http_ingest_reaches_the_kpis(stack: Stack) -> None:
    """Ingest over HTTP end to end (how fast it is visible is measured by `make bench`, not here)."""
    token = "integration-token-0123456789"
    stack.env["SQM_INGEST_TOKEN"] = token
    stack.env["SQM_AGENT_STATE_MAP"] = '{"Not Ready": "away"}'
    stack.worker()
    stack.api()
    wait_for(lambda: httpx.get(stack.url + "/readyz").json()["ready"], 60, "ready", stack)
    now = time.time()
    body = [ticket("ticket.created", now, now, "h1", team="ingest"), survey(now, "hs", team="ingest", csat=9),
            agent_state(now, "ia1", "Not Ready", team="ingest"), agent_state(now, "ia2", "Lunch", team="ingest")]
    r = httpx.post(stack.url + "/v1/events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2, r.json()  # the ticket, and the vendor state the stack's map knows
    assert [(x["index"], x["reason"]) for x in r.json()["rejected"]] == [(1, "invalid"), (3, "invalid")]

    def visible() -> bool:
        return stack.kpis("team:ingest", "5m")["tickets_created"]["count"] == 1 and \
            stack.metrics().get("sqm_events_total{type=agent.state}") == 1

    wait_for(visible, 30, "the ingested events in /v1/kpis and /metrics", stack)
    assert httpx.post(stack.url + "/v1/events", json=body).status_code == 401


def test_replay_file_reaches_the_kpis(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    events = random_stream(500, now, seed=9)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\nnot json\n")
    stack.worker()
    stack.api()
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "services.replay", str(path)], env=stack.env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sent 501 lines (1 not JSON" in out.stdout
    wait_for(lambda: stack.seen_messages() >= 501, 90, "replayed events", stack)
    assert_oracle(stack, events, now)


def test_live_calls_and_tickets_reach_kpis_metrics_and_the_ticket_list(stack: Stack) -> None:
    now = time.time()
    events = lifecycles(1500, now, seed=12)
    stack.worker()
    stack.api()
    produce(stack, events)
    wait_for(lambda: stack.seen_messages() >= len(events), 90, f"{len(events)} messages", stack)
    checked = time.time()
    for scope in ("all", "team:billing", "queue:q1", "queue:q2", "tier:vip", "agent:a2", "channel:chat"):
        got = stack.kpis(scope, "5m")
        want = oracle.live(events, scope, checked)
        for name, (value, count, _) in want.items():
            assert got[name]["count"] == count, (scope, name, got[name], count)
            if name.endswith("_s"):  # ages tick between the two readings
                assert (got[name]["value"] is None) == (value is None), (scope, name)
                assert value is None or abs(got[name]["value"] - value) < 5, (scope, name, got[name], value)
            elif name in ("calls_waiting", "backlog"):
                assert got[name]["value"] == value, (scope, name)
    m = stack.metrics()
    q1 = oracle.live(events, "queue:q1", time.time())["calls_waiting"][0]
    assert m["sqm_calls_waiting{kind=queue,scope=queue:q1}"] == q1 and q1 > 0
    assert m["sqm_longest_wait_seconds{kind=queue,scope=queue:q1}"] > 0
    assert "sqm_oldest_unanswered_seconds{kind=all,scope=all}" in m
    body = httpx.get(stack.url + "/v1/tickets", params={"scope": "team:billing", "limit": 500}).json()
    assert body["total"] == len(body["tickets"]) == oracle.live(events, "team:billing", time.time())["backlog"][1]
    waiting = [t for t in body["tickets"] if not t["responded"]]
    assert [t["due_at"] for t in waiting] == sorted(t["due_at"] for t in waiting)  # most urgent first
    assert httpx.get(stack.url + "/v1/tickets", params={"scope": "queue:q1"}).status_code == 422
    # Erlang C per queue, on the figures /v1/kpis gives (the arithmetic itself: tests/unit/test_erlang.py)
    st = httpx.get(stack.url + "/v1/staffing", params={"scope": "queue:q1"}).json()["queues"][0]
    k15, k1h = stack.kpis("queue:q1", "15m"), stack.kpis("queue:q1", "1h")
    assert st["calls_offered_15m"] == k15["calls_offered"]["count"] > 0
    assert st["lambda_per_s"] == st["calls_offered_15m"] / 900
    assert st["handle_time_s"] == (k1h["aht_s"]["value"] or 300.0)
    a = st["lambda_per_s"] * st["handle_time_s"]
    assert st["traffic_erlangs"] == a and st["required_agents"] == required_agents(
        a, threshold_s=st["threshold_s"], handle_s=st["handle_time_s"], target=st["target"])
    assert (st["threshold_s"], st["target"]) == (20.0, 0.8)  # the defaults: the queue:* target of the file
    assert st["staffing_gap"] == -st["required_agents"] and st["agents_staffed"] == 0  # no agent events here
    assert k15["required_agents"]["value"] == st["required_agents"]
    assert stack.metrics()["sqm_required_agents{kind=queue,scope=queue:q1}"] == st["required_agents"]
    assert httpx.get(stack.url + "/v1/staffing", params={"scope": "team:billing"}).status_code == 422
