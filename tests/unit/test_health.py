"""Probes of the processes without a web server (services/health.py): liveness from the loop's beat,
readiness from the worker's group membership and loaded state; a stalled loop answered from the
server's own thread."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from typing import Any

import pytest

from services.health import (
    Health,
    HealthServer,
    Readiness,
    WorkerState,
    liveness,
    main,
    ready_unless,
    required_checks,
    worker_readiness,
)

ALL = frozenset(range(6))


@pytest.mark.parametrize(("age", "alive"), [
    (0.0, True),
    (29.9, True),
    (30.1, False),  # the loop has not run for longer than the limit
])
def test_liveness(age: float, alive: bool) -> None:
    ok, why = liveness(last_beat=1000.0, now=1000.0 + age, stale_after_s=30.0)
    assert ok is alive
    assert ("ran" if alive else "has not run") in why


def state(joined: bool = True, rebalancing: bool = False, kpis: frozenset[int] = ALL,
          loaded: frozenset[int] = ALL, alerts: frozenset[int] | None = None,
          alerts_loaded: frozenset[int] = frozenset(), rules_ready: bool | None = None) -> WorkerState:
    assigned, held = {"kpis": kpis}, {"kpis": loaded}
    if alerts is not None:
        assigned["alerts"], held["alerts"] = alerts, alerts_loaded
    return WorkerState(joined, rebalancing, assigned, held, rules_ready)


@pytest.mark.parametrize(("s", "ready", "status", "reason"), [
    (state(joined=False, kpis=frozenset(), loaded=frozenset()), False, "starting", "waiting for the consumer group"),
    (state(rebalancing=True), False, "rebalancing", "partitions are paused"),
    (state(joined=False, rebalancing=True, kpis=frozenset()), False, "rebalancing", "rebalancing"),
    (state(loaded=frozenset({0, 1})), False, "recovering", "kpis partitions [2, 3, 4, 5]"),
    # loaded partitions that are no longer assigned (revoked meanwhile) do not matter
    (state(kpis=frozenset({4, 5}), loaded=ALL), True, "ready", "state loaded"),
    (state(kpis=frozenset({4, 5}), loaded=frozenset({4, 5})), True, "ready", "state loaded"),
    (state(alerts=frozenset({2}), alerts_loaded=frozenset(), rules_ready=True), False, "recovering",
     "alerts partitions [2]"),
    (state(alerts=frozenset({2}), alerts_loaded=frozenset({2}), rules_ready=False), False, "recovering", "rule feed"),
    (state(alerts=frozenset({2}), alerts_loaded=frozenset({2}), rules_ready=True), True, "ready", "state loaded"),
    # joined with nothing to do (more workers than partitions): a ready standby
    (state(kpis=frozenset(), loaded=frozenset()), True, "standby", "more workers than partitions"),
    (state(kpis=frozenset(), loaded=frozenset(), alerts=frozenset(), rules_ready=True), True, "standby",
     "no partition"),
])
def test_worker_readiness(s: WorkerState, ready: bool, status: str, reason: str) -> None:
    r = worker_readiness(s)
    assert (r.ready, r.status) == (ready, status)
    assert reason in r.reason


def test_worker_readiness_never_looks_at_lag() -> None:
    """Lag is not an input at all: a worker far behind with its partitions loaded is ready."""
    assert set(WorkerState.__dataclass_fields__) == {"joined", "rebalancing", "assigned", "loaded", "rules_ready"}


def test_ready_unless() -> None:
    assert ready_unless(database_down=False, broker_down=False).ready
    r = ready_unless(migrations_pending=True, database_down=True)
    assert (r.ready, r.reason, dict(r.detail)) == (False, "migrations_pending, database_down",
                                                     {"migrations_pending": True, "database_down": True})


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_answers_follow_the_beat_and_the_check() -> None:
    clock = Clock()
    h = Health(stale_after_s=30.0, clock=clock)
    assert h.answer("/livez")[0] == 200  # starting counts as alive
    assert h.answer("/readyz") == (503, {"ready": False, "status": "starting", "reason": "the process is starting",
                                         "detail": {}})
    h.ready_when(lambda: Readiness(True, "ready", "fine", {"kpis": [0]}))
    assert h.answer("/readyz") == (200, {"ready": True, "status": "ready", "reason": "fine", "detail": {"kpis": [0]}})
    clock.t += 31  # no beat for 31 s: the loop is stalled
    status, body = h.answer("/livez")
    assert (status, body["live"]) == (503, False) and "has not run for 31 s" in body["reason"]
    assert h.answer("/readyz")[0] == 503 and h.answer("/readyz")[1]["status"] == "stalled"
    h.beat()
    assert h.answer("/livez")[0] == 200 and h.answer("/readyz")[0] == 200
    assert h.answer("/metrics")[0] == 404


def test_a_failing_check_is_not_ready_and_the_beat_goes_on() -> None:
    clock = Clock()
    h = Health(clock=clock)

    def broken() -> Readiness:
        raise KeyError("partition")

    h.ready_when(broken)
    clock.t += 5
    h.beat()
    assert h.last_beat == 105.0
    status, body = h.answer("/readyz")
    assert status == 503 and "KeyError" in body["reason"]


def get(port: int, path: str) -> tuple[int, dict[str, Any], float]:
    """A bare request (http.client: no TLS context to build, so that the time measured is the server's)."""
    t = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read()), time.monotonic() - t
    finally:
        conn.close()


def test_a_blocked_loop_gets_503_from_the_server_thread_at_once() -> None:
    """A real loop beating every 50 ms, then blocked for 0.8 s by a callback that sleeps: the probe,
    asked meanwhile, answers 503 within milliseconds (from its own thread) instead of hanging until
    the loop is back; once the loop runs again, 200."""
    probes = Health(stale_after_s=0.25)
    server = HealthServer(0, probes).start()
    port = server.server_address[1]
    during: list[tuple[int, dict[str, Any], float]] = []

    def probe_while_blocked() -> None:
        time.sleep(0.5)  # the loop has been blocked for ~0.5 s, beyond the 0.25 s limit
        during.extend([get(port, "/livez"), get(port, "/readyz")])

    async def main() -> tuple[tuple[int, dict[str, Any], float], tuple[int, dict[str, Any], float]]:
        probes.start_beating(0.05)
        probes.ready_when(lambda: Readiness(True, "ready", "test"))
        await asyncio.sleep(0.15)
        before = await asyncio.to_thread(get, port, "/livez")
        prober = threading.Thread(target=probe_while_blocked)
        prober.start()
        asyncio.get_running_loop().call_soon(time.sleep, 0.8)  # the stall: nothing else runs meanwhile
        await asyncio.sleep(0.1)
        after = await asyncio.to_thread(get, port, "/livez")
        prober.join()
        return before, after

    try:
        before, after = asyncio.run(main())
    finally:
        server.close()
    assert before[0] == 200
    (live_status, live_body, live_s), (ready_status, ready_body, _) = during
    assert live_status == 503 and "has not run" in live_body["reason"]
    assert live_s < 0.1, live_s  # answered while the loop was still blocked, not after it
    assert (ready_status, ready_body["status"]) == (503, "stalled")
    assert after[0] == 200


API_READY = {"ready": False, "checks": {"broker": True, "database": False, "worker_assigned": False,
                                        "view_warm": True}}


@pytest.mark.parametrize(("status", "body", "required", "ok"), [
    (200, {"ready": True}, [], True),
    (503, {"ready": False}, [], False),
    # the API's /readyz during a database outage: this replica still serves true figures
    (503, API_READY, ["view_warm", "broker"], True),
    (503, API_READY, ["view_warm", "database"], False),
    (503, API_READY, ["no_such_check"], False),  # a misspelt check never passes
    (503, {}, ["view_warm"], False),
])
def test_required_checks(status: int, body: dict[str, Any], required: list[str], ok: bool) -> None:
    assert required_checks(status, body, required)[0] is ok


def test_the_exec_probe_command_against_a_real_server(capsys: pytest.CaptureFixture[str]) -> None:
    probes = Health()
    server = HealthServer(0, probes).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main([url + "/readyz"]) == 1  # starting
        probes.ready_when(lambda: Readiness(True, "ready", "fine"))
        assert main([url + "/readyz"]) == 0
        assert main([url + "/livez"]) == 0
        assert main(["http://127.0.0.1:1/readyz"]) == 1  # nothing listens
        assert main([]) == 2
    finally:
        server.close()
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["HTTP 503: the process is starting", "HTTP 200: fine"]
    assert out[2].startswith("HTTP 200: the event loop ran") and "Connection refused" in out[3]
