"""Health probes of real processes on the embedded broker (SQM_HEALTH_PORT, services/health.py).

A worker (role all) answers /readyz 200 once it holds every partition with its state loaded, and
with no traffic at all: the state was loaded because of the assignment, not by a first batch.
/livez answers 200. The notifier and the history writer are ready once their database is migrated.
A stalled loop is tested in tests/unit/test_health.py, with a real loop: a stopped process
(SIGSTOP) answers nothing at all, which would say nothing about the probe.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from services.broker import free_port
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.integration
PARTITIONS = list(range(6))


def probe(port: int, path: str) -> tuple[int, dict[str, Any]] | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:  # not listening yet
        return None
    return r.status_code, r.json()


def test_probes_of_a_worker_the_notifier_and_the_history_writer(stack: Stack) -> None:
    ports = {name: free_port() for name in ("worker", "notifier", "history")}
    t0 = time.monotonic()
    stack.start("worker", "services.worker", SQM_WORKER_ID="w1", SQM_WORKER_ROLE="all",
                SQM_HEALTH_PORT=str(ports["worker"]))
    stack.start("notifier", "services.notifier", SQM_HEALTH_PORT=str(ports["notifier"]))
    stack.start("history", "services.history_writer", SQM_HEALTH_PORT=str(ports["history"]))
    seen: list[dict[str, Any]] = []

    def worker_ready() -> bool:
        answer = probe(ports["worker"], "/readyz")
        if answer is not None and (not seen or seen[-1] != answer[1]):
            seen.append(answer[1])
        return answer is not None and answer[0] == 200

    try:
        wait_for(worker_ready, 90, "the worker's /readyz", stack)
    except AssertionError as exc:
        raise AssertionError(f"answers: {seen}") from exc
    ready_s = time.monotonic() - t0
    assert seen[-1] == {"ready": True, "status": "ready", "reason": "joined, partitions assigned and their state "
                        "loaded", "detail": {"kpis": PARTITIONS, "alerts": PARTITIONS}}
    live = probe(ports["worker"], "/livez")
    assert live is not None and live[0] == 200 and live[1]["live"] is True, live

    for name in ("notifier", "history"):
        wait_for(lambda n=name: (probe(ports[n], "/readyz") or (0, {}))[0] == 200, 60, f"{name} /readyz", stack)
        assert (probe(ports[name], "/livez") or (0, {}))[0] == 200
    assert not stack.exited(), stack.logs()
    print(f"worker ready {ready_s:.1f} s after its start; its answers: {[a['status'] for a in seen]}")
