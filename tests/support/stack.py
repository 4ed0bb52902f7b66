"""Worker, API and notifier processes of one test on the real embedded broker, and how to feed them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from services.broker import EmbeddedBroker, free_port
from services.config import Settings
from services.producer import make_producer, route
from services.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """Worker and API processes for one test, on their own topics (prefix) and consumer group."""

    def __init__(self, broker: EmbeddedBroker, tmp: Path, **env: str) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:8]}."
        self.port = free_port()
        self.tmp = tmp
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SQM_TOPIC_PREFIX": self.prefix,
                    "SQM_API_PORT": str(self.port), "SQM_EMBEDDED_BROKER": "off", "PYTHONPATH": str(ROOT),
                    "SQM_DATABASE_URL": f"sqlite:///{tmp}/sqm.db", **env}
        self.settings = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=self.prefix)
        ensure_topics(self.settings)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, name: str, module: str, **env: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", module], env={**self.env, **env}, stdout=out,
                             stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = p
        return p

    def worker(self, name: str = "w1", role: str = "all") -> subprocess.Popen[bytes]:
        return self.start(name, "services.worker", SQM_WORKER_ID=name, SQM_WORKER_ROLE=role)

    def api(self, name: str = "api", port: int | None = None) -> subprocess.Popen[bytes]:
        """The API on the stack's port (another `port`: a second API, at `http://127.0.0.1:<port>`)."""
        p = self.start(name, "services.api", SQM_API_PORT=str(port or self.port))
        url = f"http://127.0.0.1:{port or self.port}"
        wait_for(lambda: _get(url + "/healthz") is not None, 60, f"{name} up", self)  # generous: a loaded machine
        return p

    def exited(self) -> dict[str, int]:
        """The processes that have exited, with their exit codes."""
        return {name: code for name, p in self.procs.items() if (code := p.poll()) is not None}

    def notifier(self, name: str = "notifier") -> subprocess.Popen[bytes]:
        return self.start(name, "services.notifier")

    def history_writer(self, name: str = "history") -> subprocess.Popen[bytes]:
        return self.start(name, "services.history_writer")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(20)

    def stop(self) -> None:
        """End every process (teardown). SIGKILL, not SIGTERM: a graceful stop costs 1.5-2 s per stack
        (Faust leaving its groups, uvicorn draining) and no test asserts on it; a test that means a
        graceful stop says so with `kill(name, signal.SIGTERM)`."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            p.wait(15)

    def kpis(self, scope: str, window: str) -> dict[str, Any]:
        r = httpx.get(self.url + "/v1/kpis", params={"scope": scope, "window": window}, timeout=10)
        r.raise_for_status()
        return r.json()["kpis"]  # type: ignore[no-any-return]

    def metrics(self) -> dict[str, float]:
        """sample name + sorted labels -> value"""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def seen_messages(self) -> int:
        """valid events (late ones included) + duplicates + dead letters, as the API's view counts them."""
        m = self.metrics()
        return int(sum(v for k, v in m.items() if k.startswith(("sqm_events_total", "sqm_deadletter_total",
                                                                 "sqm_duplicate_events_total"))))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def wait_for(cond: Any, timeout: float, what: str, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{stack.logs() if stack else ''}")


def produce(stack: Stack, events: list[Any], pace: float = 0.0, batched: bool = False) -> None:
    """Send contract events (dicts) or (topic kind, raw bytes) pairs, as an upstream producer would.

    One record per batch by default (services/producer.py: the embedded broker's end offsets are only
    right then); `batched` sends normal batches, 2-3x faster, for a test that reads no end offsets or lag."""
    producer = make_producer(stack.settings, one_record_batches=False if batched else None)
    for i, ev in enumerate(events):
        if isinstance(ev, tuple):
            producer.send(stack.settings.topic(ev[0]), key=b"bad", value=ev[1])
        else:
            kind, key = route(ev)
            producer.send(stack.settings.topic(kind), key=key, value=orjson.dumps(ev))
        if pace and i % 100 == 99:
            producer.flush()
            time.sleep(pace)
    producer.flush()
    producer.close()
