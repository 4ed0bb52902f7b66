"""Throughput of the whole `make run` process set on the bench data, beside a paired bare-Faust run.

`make run` runs a KPI worker, an alert worker, the API, the notifier and the history writer on the
same machine. Each takes CPU from the KPI fold, so the KPI worker alone flatters what a user sees.
Here they all run (default rules, a log target, SQLite) on their own copy of the events; the rate is
taken from the first state record to the moment the API's /metrics counts every event.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.broker import free_port
from services.config import Settings
from stream.records import CountersKey, decode_key

Start = Callable[..., subprocess.Popen[bytes]]


def counted(api: str) -> int:
    """Events the API's view has counted (valid ones, duplicates and dead letters)."""
    total = 0.0
    for fam in text_string_to_metric_families(httpx.get(api + "/metrics", timeout=10).text):
        if fam.name in ("sqm_events", "sqm_deadletter", "sqm_duplicate_events"):
            total += sum(s.value for s in fam.samples if s.name.endswith("_total"))
    return int(total)


async def first_state_record(s: Settings, timeout: float = 300) -> float:
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(s.state_topic, p) for p in range(s.partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    if isinstance(decode_key(m.key), CountersKey):
                        return float(m.timestamp) / 1000
        raise TimeoutError("no state record")
    finally:
        await c.stop()


def process_set_rate(s: Settings, n: int, logs: Path, start: Start, run: str) -> tuple[float, list[Any]]:
    """events/s of the whole set on the events already on `s`'s topics; returns the processes too."""
    port = free_port()
    db = logs / f"set-{run}.db"
    env = {"SQM_DATABASE_URL": f"sqlite:///{db}", "SQM_API_PORT": str(port)}
    procs = [start("services.api", s, logs / "set-api.log", **env)]
    api = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(api + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.3)
    procs += [start("services.notifier", s, logs / "set-notifier.log", **env),
              start("services.history_writer", s, logs / "set-history.log", **env),
              start("services.worker", s, logs / "set-alerts.log", SQM_GROUP_ID=f"set-alerts-{run}",
                    SQM_WORKER_ID="set-alerts", SQM_WORKER_ROLE="alerts", **env),
              start("services.worker", s, logs / "set-worker.log", SQM_GROUP_ID=f"set-{run}",
                    SQM_WORKER_ID="set-worker", SQM_WORKER_ROLE="kpis", **env)]
    first = asyncio.run(first_state_record(s))
    deadline = time.time() + 600
    while counted(api) < n:
        if time.time() > deadline:
            raise TimeoutError("the process set did not count every event in 600 s")
        time.sleep(0.1)
    return n / (time.time() - first), procs
