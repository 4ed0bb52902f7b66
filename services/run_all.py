"""`make run`: the whole monitor in the foreground; Ctrl-C stops everything cleanly.

Starts the embedded broker when SQM_EMBEDDED_BROKER says so (auto: loopback bootstrap address on
which nothing listens), creates the topics, then runs the KPI worker, the alert worker, the API, the
notifier, the history writer and (SQM_DEMO=1) the demo traffic as child processes, restarting a child that dies. Logs go
to var/*.log.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.broker import maybe_embedded_broker
from services.config import Settings
from services.signals import stop_event
from services.topics import ensure_topics

log = logging.getLogger("sqm")
LOG_DIR = Path("var")


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> None:
        out = open(LOG_DIR / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], env={**env, **self.env}, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.info("started %s (pid %d), log in var/%s.log", self.name, self.proc.pid, self.name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait(5)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    LOG_DIR.mkdir(exist_ok=True)
    settings = Settings()
    stop = stop_event()
    with maybe_embedded_broker(settings, str(LOG_DIR)) as broker:
        env = dict(os.environ)
        if broker is not None:
            log.info("embedded broker on %s (memory only: its data is gone when sqm stops)", broker.bootstrap)
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        else:
            log.info("using the Kafka cluster at %s", settings.kafka_bootstrap_servers)
        ensure_topics(Settings(kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS",
                                                               settings.kafka_bootstrap_servers)))
        # the KPI fold and the alert evaluation in two workers (docs/operations.md: worker roles)
        children = [Child("worker", "services.worker", {"SQM_WORKER_ROLE": "kpis", "SQM_WORKER_ID": "worker"}),
                    Child("alert-worker", "services.worker",
                          {"SQM_WORKER_ROLE": "alerts", "SQM_WORKER_ID": "alert-worker"}),
                    Child("api", "services.api"), Child("notifier", "services.notifier"),
                    Child("history", "services.history_writer")]
        if settings.demo:
            children.append(Child("simulator", "services.simulator"))
        for c in children:
            c.start(env)
        base = f"http://{settings.api_host}:{settings.api_port}"
        print(f"\n  sqm is starting. Board: {base}/board   (wall screen: {base}/board?kiosk=1)\n"
              f"  KPIs: {base}/v1/kpis?scope=all&window=1h   Alerts: {base}/v1/alerts   API docs: {base}/docs"
              f"   Metrics: {base}/metrics\n  Ctrl-C stops everything.\n", flush=True)
        while not stop.is_set():
            time.sleep(0.5)
            for c in children:
                if c.proc is not None and c.proc.poll() is not None and not stop.is_set():
                    now = time.time()
                    c.restarts = [t for t in c.restarts if now - t < 60] + [now]
                    if len(c.restarts) > 5:
                        log.error("%s keeps dying (see var/%s.log); stopping", c.name, c.name)
                        stop.set()
                        break
                    log.warning("%s exited with %s; restarting", c.name, c.proc.returncode)
                    c.start(env)
        log.info("stopping")
        for c in reversed(children):
            c.stop()
        for c in reversed(children):
            c.wait(15)
    log.info("stopped")


if __name__ == "__main__":
    main()
