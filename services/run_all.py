"""`make run`: the whole monitor in the foreground; Ctrl-C stops everything cleanly.

Starts the embedded broker when SQM_EMBEDDED_BROKER says so (auto: loopback bootstrap address on
which nothing listens), creates the topics, then runs the KPI worker, the alert worker, the API, the
notifier, the history writer and (SQM_DEMO=1) the demo traffic as child processes. Logs go to
var/<name>.log.

A child that exits is started again, never the whole set stopped: after 1 s, then twice as long
each time it exits again quickly, up to 60 s; once it has stayed up 60 s the wait is back to 1 s
(`RestartPolicy`). Each exit is logged with the child, its exit code, the last line of its log,
where that log is and when the next attempt comes; the other children go on meanwhile (a database
outage that makes one of them exit at start costs that one, not the API's live figures).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.broker import maybe_embedded_broker
from services.config import Settings
from services.signals import stop_event
from services.topics import ensure_topics

log = logging.getLogger("sqm")
LOG_DIR = Path("var")
# glibc: return large freed blocks (the dedupe index's merge temporaries) to the system at once
# instead of keeping them in the heap; measured 16.5 bytes per remembered id instead of 28-31
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072")}


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How long to wait before starting a child that exited. Pure: the caller says how long it ran.

    >>> p = RestartPolicy()
    >>> streak, waits = 0, []
    >>> for _ in range(8):
    ...     streak, wait = p.after_exit(streak, uptime_s=2.0)
    ...     waits.append(wait)
    >>> waits
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    >>> p.after_exit(streak, uptime_s=600.0)   # it had stayed up: a fresh failure
    (1, 1.0)
    """

    first_s: float = 1.0
    max_s: float = 60.0
    stable_s: float = 60.0  # up this long: it had recovered, the next exit starts a new streak

    def after_exit(self, streak: int, uptime_s: float) -> tuple[int, float]:
        """(quick exits in a row, this one included; seconds to wait before the next start)."""
        streak = 1 if uptime_s >= self.stable_s else streak + 1
        return streak, min(self.max_s, self.first_s * 2.0 ** min(streak - 1, 32))


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    streak: int = 0  # quick exits in a row
    start_at: float | None = None  # when to start it again, after an exit

    @classmethod
    def module(cls, name: str, module: str, env: dict[str, str] | None = None) -> Child:
        return cls(name, [sys.executable, "-m", module], env or {})

    def start(self, env: dict[str, str], log_dir: Path, now: float) -> None:
        with open(log_dir / f"{self.name}.log", "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, env={**env, **self.env}, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started_at, self.start_at = now, None
        log.info("started %s (pid %d), log in %s", self.name, self.proc.pid, log_dir / f"{self.name}.log")

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


def exit_text(code: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL'."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def last_line(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


class Supervisor:
    """Runs the children and restarts each one that exits, by `policy`; `tick` is one look at them all.

        sup = Supervisor(children, env, RestartPolicy(), Path("var"))
        sup.start_all(); while running: sup.tick(); sup.stop_all()
    """

    def __init__(self, children: list[Child], env: dict[str, str], policy: RestartPolicy, log_dir: Path,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = children
        self.env = env
        self.policy = policy
        self.log_dir = log_dir
        self.clock = clock

    def start_all(self) -> None:
        for c in self.children:
            c.start(self.env, self.log_dir, self.clock())

    def tick(self) -> None:
        now = self.clock()
        for c in self.children:
            if c.start_at is not None:
                if now >= c.start_at:
                    c.start(self.env, self.log_dir, now)
                continue
            code = c.proc.poll() if c.proc is not None else None
            if code is None:
                if c.streak and now - c.started_at >= self.policy.stable_s:
                    log.info("%s has stayed up %.0f s: running normally again", c.name, now - c.started_at)
                    c.streak = 0
                continue
            uptime = now - c.started_at
            c.streak, wait = self.policy.after_exit(c.streak, uptime)
            c.start_at = now + wait
            path = self.log_dir / f"{c.name}.log"
            line = last_line(path)
            log.warning("%s %s after %.0f s (quick exits in a row: %d); starting it again in %g s; its log: "
                        "%s%s", c.name, exit_text(code), uptime, c.streak, wait, path,
                        f"; last line: {line}" if line else "")

    def stop_all(self, timeout: float) -> None:
        for c in reversed(self.children):
            c.start_at = None
            c.stop()
        for c in reversed(self.children):
            c.wait(timeout)


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
        children = [Child.module("worker", "services.worker", {"SQM_WORKER_ROLE": "kpis", "SQM_WORKER_ID": "worker",
                                                                  **WORKER_MALLOC}),
                    Child.module("alert-worker", "services.worker",
                                 {"SQM_WORKER_ROLE": "alerts", "SQM_WORKER_ID": "alert-worker"}),
                    Child.module("api", "services.api"), Child.module("notifier", "services.notifier"),
                    Child.module("history", "services.history_writer")]
        if settings.demo:
            children.append(Child.module("simulator", "services.simulator"))
        supervisor = Supervisor(children, env, RestartPolicy(), LOG_DIR)
        supervisor.start_all()
        base = f"http://{settings.api_host}:{settings.api_port}"
        print(f"\n  sqm is starting. Board: {base}/board   (wall screen: {base}/board?kiosk=1)\n"
              f"  KPIs: {base}/v1/kpis?scope=all&window=1h   Alerts: {base}/v1/alerts   API docs: {base}/docs"
              f"   Metrics: {base}/metrics\n  Ctrl-C stops everything.\n", flush=True)
        while not stop.is_set():
            time.sleep(0.5)
            if not stop.is_set():
                supervisor.tick()
        log.info("stopping")
        supervisor.stop_all(15)
    log.info("stopped")


if __name__ == "__main__":
    main()
