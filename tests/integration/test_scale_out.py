"""Scale-out on the real embedded broker: three KPI workers and two alert workers, one of each killed
with SIGKILL mid-stream. The survivors take the partitions over; every KPI of every scope equals the
oracle, and every alert fires exactly once (alerts topic, database, notifications).

Where the time goes (measured on 2 cores: 49 s with little else running, 61-65 s beside other test
runs): seven processes starting and the two groups forming (19-28 s), then the broker noticing the
killed members (session timeout, 10 s), rebalancing (5 s) and the survivors catching up (about 20 s
after the kill); the checks themselves take 5-8 s.
"""

from __future__ import annotations

import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaConsumer

from alerts.evaluator import is_transition
from services.broker import EmbeddedBroker
from services.loadgen import call, random_stream
from stream.scopes import scope_partition
from tests.support import oracle
from tests.support.scale import Api, PacedFeed
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
KPI_WORKERS = ("k1", "k2", "k3")
ALERT_WORKERS = ("a1", "a2")
WINDOWS = ("5m", "15m", "1h", "24h")


def one_team_per_partition(tag: str, partitions: int) -> list[str]:
    """Team names whose scopes cover every scope partition: each alert worker then owns some alerts."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(scope_partition(f"team:{tag}{i}", partitions), f"{tag}{i}")
        if len(found) == partitions:
            break
    return [found[q] for q in sorted(found)]


def rule(team: str) -> dict[str, Any]:
    """One rule per team (a rule on `team:*` would also judge the random stream's teams, which cross
    the line back and forth while their data arrives)."""
    return {"id": f"sl-{team}", "kpi": "service_level", "scope": f"team:{team}", "window": "5m", "op": "<",
            "warning": 0.8, "critical": 0.5, "for": "0s", "min_count": 5}


def slow_calls(team: str, n: int, tag: str) -> list[dict[str, Any]]:
    """Answered calls all beyond the 20 s threshold: service level 0, a critical alert that never clears."""
    now = time.time()
    return [call("call.answered", now, f"{tag}-{team}-{i}", team=team, agent="alarm-a", queue="alarm-q",
                 channel="phone", wait_s=90.0) for i in range(n)]


def owned(stack: Stack, metric: str, workers: tuple[str, ...]) -> list[int]:
    m = stack.metrics()
    return [int(m.get(f"{metric}{{worker={w}}}", 0)) for w in workers]


def transitions(stack: Stack, firing: int) -> list[dict[str, Any]]:
    """Every transition of the alerts topic (not its live values and censuses), read until it holds
    `firing` firing transitions and then 0.5 s passed without a record (end offsets cannot tell: the
    embedded broker reports them wrong). Called once the alert workers are gone: nothing more can come."""
    consumer = KafkaConsumer(stack.settings.alerts_topic, bootstrap_servers=stack.settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=500)
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while sum(t.get("kind") == "firing" for t in out) < firing and time.monotonic() < deadline:
        out += [orjson.loads(m.value) for m in consumer]
    out += [orjson.loads(m.value) for m in consumer]
    consumer.close()
    return [t for t in out if is_transition(t)]


def firing_scopes(api: Api) -> set[str]:
    """The scopes of the firing alerts in the database (the notifier writes them from the alerts topic)."""
    return {a["scope"] for a in api.get("/v1/alerts", state="firing", limit=100)["alerts"]}


def assert_every_kpi_matches(api: Api, events: list[dict[str, Any]]) -> None:
    """Every scope the events make, every window: windowed KPIs exactly, live ones at the API's own time."""
    want = set().union(*(oracle.scopes(e) for e in events))
    got = set(api.get("/v1/scopes")["scopes"])
    assert got == want, (got ^ want)
    for scope in sorted(want):
        mine = [e for e in events if scope in oracle.scopes(e)]  # what oracle.kpis filters itself, once
        for window in WINDOWS:
            body = api.get("/v1/kpis", scope=scope, window=window)
            at = datetime.fromisoformat(body["as_of"].replace("Z", "+00:00")).timestamp()
            kpis = body["kpis"]
            oracle.assert_matches(kpis, oracle.kpis(mine, scope, window, at), f"{scope}/{window}")
        for name, (value, count, _) in oracle.live(events, scope, at).items():
            assert kpis[name]["count"] == count, (scope, name, kpis[name], count)
            got = kpis[name]["value"]
            # the API computes ages from the same `now` it reports, to the millisecond
            assert (got is None and value is None) or (None not in (got, value) and abs(got - value) < 0.01), \
                (scope, name, kpis[name], value)


def test_kill_one_kpi_and_one_alert_worker_mid_stream(broker: EmbeddedBroker, tmp_path: Path) -> None:
    t0 = time.monotonic()
    timeline: dict[str, float] = {}
    n = 6  # Settings().partitions
    early, late = one_team_per_partition("early", n), one_team_per_partition("late", n)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [rule(t) for t in early + late]}))
    notify = tmp_path / "notify.yaml"
    sent_log = tmp_path / "notifications.jsonl"
    notify.write_text(yaml.safe_dump({"targets": [{"name": "file", "type": "log", "path": str(sent_log)}],
                                      "routes": [{"targets": ["file"]}]}))
    stack = Stack(broker, tmp_path, SQM_RULES_FILE=str(rules), SQM_NOTIFY_FILE=str(notify),
                  SQM_ALERT_FULL_EVAL_S="2")
    api = Api(stack)
    assert stack.settings.partitions == n
    try:
        for w in KPI_WORKERS:
            stack.worker(w, role="kpis")
        for w in ALERT_WORKERS:
            stack.worker(w, role="alerts")
        stack.start("api", "services.api")  # not stack.api(): seven processes start at once, the wait is below
        stack.notifier()
        alarms_early = [c for t in early for c in slow_calls(t, 10, "e")]
        produce(stack, alarms_early)  # the early alerts fire while the groups form

        def split() -> bool:
            kpi, alert = owned(stack, "sqm_worker_assigned_partitions", KPI_WORKERS), \
                owned(stack, "sqm_worker_alert_partitions", ALERT_WORKERS)
            return sum(kpi) == n and all(kpi) and sum(alert) == n and all(alert)

        wait_for(split, 120, "three KPI workers and two alert workers sharing the partitions", stack)
        timeline["split"] = time.monotonic() - t0

        # made now, not before the start-up: the ages of random_stream stay clear of the window edges
        # only for a bucket plus about 90 s (services/loadgen.py AGE_BANDS)
        background = random_stream(3000, time.time(), seed=11)
        first, second = background[:1000], background[1000:]
        # redeliveries, after the kill, of events sent before it: the dedupe state moves with the partition
        again = [dict(e) for e in random.Random(11).sample(first, 150)]
        alarms_late = [c for t in late for c in slow_calls(t, 10, "l")]
        more_early = [c for t in early for c in slow_calls(t, 5, "m")]  # the survivor must not fire these again
        after_kill = second[1000:] + again + alarms_late + more_early
        events = first + alarms_early + second + alarms_late + more_early  # unique, valid: what the oracle sees

        produce(stack, first)
        wait_for(lambda: firing_scopes(api) >= {f"team:{t}" for t in early}, 60, "the early alerts", stack)
        timeline["early alerts"] = time.monotonic() - t0
        time.sleep(0.5)  # their alert state is published with them; let that land before the kill

        feed = PacedFeed(stack, second[:1000], after_kill).start()
        wait_for(lambda: feed.sent >= 400, 30, "the stream under way", stack)
        stack.kill("k2")  # SIGKILL mid-stream: a batch in hand, offsets not committed
        stack.kill("a1")  # SIGKILL while it holds firing alerts: their state must move to a2
        timeline["kill"] = time.monotonic() - t0
        timeline["kill, epoch"] = time.time()  # to read the takeover off the workers' logs
        timeline["sent at the kill"] = feed.sent
        feed.release()  # the redeliveries and the late alarms go out after the kill

        feed.join(30)
        counted = len(events) + len(again)
        # each of these needs the takeover: k2's partitions hold a third of the events, a1's the late alerts
        wait_for(lambda: stack.seen_messages() >= counted, 90, f"{counted} messages after the takeover", stack)
        wait_for(lambda: firing_scopes(api) >= {f"team:{t}" for t in early + late}, 60, "the late alerts", stack)
        timeline["caught up"] = time.monotonic() - t0
        wait_for(lambda: sum(owned(stack, "sqm_worker_assigned_partitions", ("k1", "k3"))) == n
                 and owned(stack, "sqm_worker_alert_partitions", ("a2",)) == [n], 30,
                 "the survivors' heartbeats (every 5 s) owning every partition", stack)
        wait_for(lambda: sent_log.exists() and len(sent_log.read_text().splitlines()) >= 2 * n, 30,
                 "the notifications", stack)
        # a full evaluation round (2 s) after the last alert fired: a second alert for a scope would show up
        time.sleep(max(0.0, 2.5 - (time.monotonic() - t0 - timeline["caught up"])))
        timeline["settled"] = time.monotonic() - t0
        # the survivors own every partition, each once
        assert sorted(owned(stack, "sqm_worker_assigned_partitions", ("k1", "k3"))) == [3, 3]
        assert owned(stack, "sqm_worker_alert_partitions", ("a2",)) == [n]
        # Their work is done and on the topics; stopped, they leave the CPU to the few hundred reads below
        # (the API keeps its view, the database keeps the alerts). SIGKILL: a graceful stop takes 1.5-2 s.
        survivors = [stack.procs.pop(w) for w in ("k1", "k3", "a2")]
        for p in survivors:
            p.kill()
        for p in survivors:
            p.wait(20)

        # KPIs: nothing lost, nothing counted twice, every figure of every scope exact
        m = stack.metrics()
        assert stack.seen_messages() == counted
        assert m["sqm_duplicate_events_total{}"] == len(again)
        assert_every_kpi_matches(api, events)
        timeline["kpis checked"] = time.monotonic() - t0

        # alerts: one alert per rule, fired once, on the topic, in the database and in the notifications
        expected = {f"team:{t}" for t in early + late}
        ts = transitions(stack, firing=len(expected))
        assert len({t["event_id"] for t in ts}) == len(ts), "a transition was published twice"
        assert {t["scope"] for t in ts} == expected
        for scope in expected:
            mine = [t for t in ts if t["scope"] == scope]
            assert len({t["alert_id"] for t in mine}) == 1, mine
            assert [t["kind"] for t in mine if t["kind"] != "pending"] == ["firing"], mine
        ids = {t["alert_id"] for t in ts}
        stored = api.get("/v1/alerts", limit=100)["alerts"]
        assert sorted((a["id"], a["state"]) for a in stored) == sorted((i, "firing") for i in ids)
        for a in stored:
            kinds = [h["kind"] for h in api.get(f"/v1/alerts/{a['id']}")["history"]]
            assert kinds.count("firing") == 1, (a["scope"], kinds)
        sent = [orjson.loads(line) for line in sent_log.read_text().splitlines()]
        assert sorted(s["alert"]["alert_id"] for s in sent if s["status"] == "firing") == sorted(ids)
        assert len(sent) == len(ids)
        timeline["asserted"] = time.monotonic() - t0
    finally:
        api.close()
        stack.stop()
    timeline["end"] = time.monotonic() - t0
    print(f"\nscale-out timeline (s): {({k: round(v, 1) for k, v in timeline.items()})}")
