"""The API keeps serving figures while its database is locked: no database call on the event loop.

A PostgreSQL session takes ACCESS EXCLUSIVE locks on the alert tables (every reader and writer of them
waits). Meanwhile `/v1/kpis` and `/metrics` answer within 200 ms, and so do they while a rule write
waits for its lock in a thread.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from services.broker import EmbeddedBroker
from services.loadgen import ticket
from tests.support.postgres import schema_url
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
TOKEN = "admin-token-for-tests-0123456789"
LIMIT_S = 0.2


def timed(client: httpx.Client, path: str, **params: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = client.get(path, params=params)
    return r.status_code, time.perf_counter() - t0


def test_figures_answer_while_the_database_is_locked(broker: EmbeddedBroker, tmp_path: Path, postgres: str) -> None:
    with schema_url(postgres) as url:
        stack = Stack(broker, tmp_path, SQM_DATABASE_URL=url, SQM_ADMIN_TOKEN=TOKEN, SQM_RULES_FILE="")
        try:
            stack.worker()
            stack.api()
            now = time.time()
            produce(stack, [ticket("ticket.created", now, now, f"lk{i}", team="locked") for i in range(5)])
            wait_for(lambda: stack.kpis("team:locked", "5m")["tickets_created"]["count"] == 5, 60, "figures", stack)
            client = httpx.Client(base_url=stack.url, timeout=30)
            assert client.get("/metrics").status_code == 200  # a first snapshot of the alert figures
            schema = url.rsplit("%3D", 1)[1]
            with psycopg.connect(postgres) as lock:
                lock.execute(f"LOCK TABLE {schema}.alerts, {schema}.outbox, {schema}.delivery_stats, "
                             f"{schema}.rules IN ACCESS EXCLUSIVE MODE")
                # a rule write now waits for the lock (in a worker thread of the API)
                rule = {"id": "locked-rule", "kpi": "csat", "scope": "all", "op": "<", "warning": 0.5}
                write = threading.Thread(target=lambda: httpx.post(
                    stack.url + "/v1/rules", json=rule, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60))
                write.start()
                time.sleep(0.5)
                assert write.is_alive(), "the rule write should be waiting for the lock"
                slowest = 0.0
                for _ in range(10):
                    for path, params in (("/v1/kpis", {"scope": "team:locked", "window": "5m"}), ("/metrics", {})):
                        status, took = timed(client, path, **params)
                        assert status == 200, path
                        slowest = max(slowest, took)
                assert slowest < LIMIT_S, f"slowest answer {slowest * 1000:.0f} ms with the database locked"
                text = client.get("/metrics").text
                assert 'sqm_tickets_created{kind="team",scope="team:locked",window="5m"} 5.0' in text
                assert "sqm_alert_stats_age_seconds" in text  # the last snapshot, with its age
                lock.rollback()  # releases the locks
            write.join(30)
            assert not write.is_alive()
            assert client.get("/v1/rules/locked-rule").status_code == 200
        finally:
            stack.stop()
