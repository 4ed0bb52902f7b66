"""Liveness and readiness probes of the processes that have no web server: workers, notifier, history writer.

`watch(port)` serves two answers over HTTP on SQM_HEALTH_PORT, each with a JSON body saying why:

- `GET /livez`: 200 while the process's event loop beats: a task on that loop stamps the time every
  `BEAT_S`, and the probe answers 503 once the last stamp is older than `stale_after_s` (30 s). A
  worker whose batch step gives up exits at once (worker_app._die). A failing liveness probe gets the
  container restarted: it must only say "this process can no longer work", never "a dependency is
  away" (a restart would not bring the dependency back, and every replica would restart at once).
- `GET /readyz`: the readiness the loop last published (`Health.ready_when`), 503 while not ready.
  For a worker (`worker_readiness`): it has joined its consumer group, holds its assignment, no
  rebalance is under way and the state of every assigned partition is loaded. Never lag: a worker
  that is behind is exactly the one that must keep its partitions and work.

`python -m services.health URL [CHECK ...]` is the same question asked from inside a container, for
an exec probe or a compose healthcheck (the image has no curl): exit 0 when URL answers 200, or,
with CHECKs named, when those entries of its JSON `checks` are true whatever the status (the API's
/readyz: `view_warm broker`, what only this replica can fix), else exit 1 with the reason.

The server runs in a thread of its own, not on the loop it watches: a handler on that loop could
not run while the loop is blocked, so the kubelet would see a timeout (after its timeoutSeconds),
not an answer, and an operator running curl would see a hang. From a thread a stalled loop is
reported for what it is, `503 {"reason": "the event loop has not run for 41 s"}`, at once. The
thread reads two fields the loop writes (a float, a frozen `Readiness`); each is replaced whole,
which the GIL makes atomic, so no lock is needed.

    >>> liveness(last_beat=100.0, now=110.0, stale_after_s=30.0)
    (True, 'the event loop ran 10.0 s ago')
    >>> liveness(last_beat=100.0, now=141.0, stale_after_s=30.0)[0]
    False
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # asyncio is imported where it is used: the exec probe (`main`) starts faster without it
    import asyncio

log = logging.getLogger(__name__)
BEAT_S = 1.0
STALE_AFTER_S = 30.0  # far above any measured stall (a GC pass, a state load: well under 1 s)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    status: str  # ready, standby, starting, rebalancing, recovering, not_ready, stalled
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


STARTING = Readiness(False, "starting", "the process is starting")


def liveness(*, last_beat: float, now: float, stale_after_s: float) -> tuple[bool, str]:
    """Whether the loop that last beat at `last_beat` still counts as alive at `now`, and why."""
    age = now - last_beat
    if age > stale_after_s:
        return False, f"the event loop has not run for {age:.0f} s (limit {stale_after_s:.0f} s)"
    return True, f"the event loop ran {age:.1f} s ago"


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What a worker's readiness is decided from, read on its loop at each beat.

    `assigned` / `loaded`: partitions per job (`kpis`: source partitions, whose state the processor
    holds once loaded; `alerts`: scope partitions, loaded once the alert evaluator holds them)."""

    joined: bool  # an assignment was received since the process started
    rebalancing: bool  # Faust between a revocation and the end of recovery; partitions paused
    assigned: Mapping[str, frozenset[int]]
    loaded: Mapping[str, frozenset[int]]
    rules_ready: bool | None = None  # alert jobs: the rule feed has caught up; None: no alert job


def worker_readiness(s: WorkerState) -> Readiness:
    """Ready once the worker works its share: joined, not rebalancing, every assigned partition loaded.

    A worker that joined and got no partition (more workers than partitions) is ready, as a standby:
    it is doing what the group asked, the next rebalance hands it partitions, and a standby reported
    not ready would stall every rolling update and block node drains behind its PodDisruptionBudget.
    """
    detail: dict[str, Any] = {job: sorted(ps) for job, ps in s.assigned.items()}
    if s.rebalancing:
        return Readiness(False, "rebalancing", "the consumer group is rebalancing: partitions are paused", detail)
    if not s.joined:
        return Readiness(False, "starting", "waiting for the consumer group to assign partitions", detail)
    missing = {job: sorted(ps - s.loaded.get(job, frozenset())) for job, ps in s.assigned.items()}
    missing = {job: ps for job, ps in missing.items() if ps}
    if missing:
        what = "; ".join(f"{job} partitions {ps}" for job, ps in sorted(missing.items()))
        return Readiness(False, "recovering", f"loading the state of {what}", {**detail, "loading": missing})
    if s.rules_ready is False:
        return Readiness(False, "recovering", "reading the rule feed", detail)
    if not any(s.assigned.values()):
        return Readiness(True, "standby", "joined with no partition (more workers than partitions): takes "
                         "over at the next rebalance", detail)
    return Readiness(True, "ready", "joined, partitions assigned and their state loaded", detail)


def ready_unless(**failing: bool) -> Readiness:
    """Ready when none of the named conditions holds.

    >>> ready_unless(database_down=False, broker_down=True).reason
    'broker_down'
    """
    bad = [name for name, yes in failing.items() if yes]
    if bad:
        return Readiness(False, "not_ready", ", ".join(bad), dict(failing))
    return Readiness(True, "ready", "every dependency answers", dict(failing))


class Health:
    """The two facts the probes read: the loop's last beat, the last readiness published.
    Written on the loop (`beat`, `publish`), read from the server thread (`answer`)."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.last_beat = clock()  # starting counts as alive; the startupProbe covers a slow start
        self.readiness = STARTING
        self.check: Callable[[], Readiness] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def beat(self) -> None:
        self.last_beat = self.clock()
        if self.check is not None:
            try:
                self.readiness = self.check()
            except Exception as exc:  # a bug in a check must not stop the beat (liveness)
                log.exception("readiness check failed")
                self.readiness = Readiness(False, "not_ready", f"the readiness check failed: {exc!r}")

    def ready_when(self, check: Callable[[], Readiness]) -> None:
        """From now on readiness is `check()`, evaluated on the loop at every beat."""
        self.check = check
        self.beat()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body of a probe."""
        now = self.clock()
        alive, why = liveness(last_beat=self.last_beat, now=now, stale_after_s=self.stale_after_s)
        if path == "/livez":
            return (200 if alive else 503), {"live": alive, "reason": why}
        if path == "/readyz":
            r = self.readiness if alive else Readiness(False, "stalled", why)
            return (200 if r.ready else 503), {"ready": r.ready, "status": r.status, "reason": r.reason,
                                               "detail": dict(r.detail)}
        return 404, {"error": "not found: /livez and /readyz are served here"}

    async def beat_forever(self, every_s: float = BEAT_S) -> None:
        import asyncio

        while True:
            self.beat()
            await asyncio.sleep(every_s)

    def start_beating(self, every_s: float = BEAT_S) -> None:
        """Beat from the running loop (a task the Health keeps, so that it is not collected)."""
        import asyncio

        task = asyncio.get_running_loop().create_task(self.beat_forever(every_s), name="health beat")
        self._tasks.add(task)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        status, body = self.server.health.answer(self.path.split("?", 1)[0])
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the signature http.server calls
        """Quiet: the kubelet probes every few seconds; a failing probe shows in the pod's events."""


class HealthServer(http.server.ThreadingHTTPServer):
    """Listens on every address (the kubelet probes the pod's IP), IPv6 and IPv4 where the host has both."""

    daemon_threads = True

    def __init__(self, port: int, health: Health) -> None:
        self.health = health
        dual = socket.has_dualstack_ipv6()
        self.address_family = socket.AF_INET6 if dual else socket.AF_INET
        super().__init__(("::" if dual else "0.0.0.0", port), _Handler)  # noqa: S104 - probes come from outside

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def start(self) -> HealthServer:
        threading.Thread(target=self.serve_forever, args=(0.1,), name="health probes", daemon=True).start()
        log.info("health probes on port %d: /livez, /readyz", self.server_address[1])
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def watch(port: int | None, check: Callable[[], Readiness] | None = None) -> Health:
    """Serve the probes on `port` and beat from the running loop; readiness is `check()` (or
    "starting" until `ready_when` is called). `port` None: nothing is served (nor beaten)."""
    health = Health()
    if port is None:
        return health
    HealthServer(port, health).start()
    if check is not None:
        health.ready_when(check)
    health.start_beating()
    return health


def required_checks(status: int, body: Mapping[str, Any], required: Sequence[str]) -> tuple[bool, str]:
    """Whether a probe answer passes: status 200, or the named entries of its `checks` all true.

    >>> required_checks(503, {"checks": {"view_warm": True, "database": False}}, ["view_warm"])
    (True, 'view_warm: true')
    """
    if not required:
        return status == 200, f"HTTP {status}: {body.get('reason') or body.get('status') or ''}".strip()
    checks = body.get("checks") or {}
    failing = [name for name in required if checks.get(name) is not True]
    if failing:
        return False, f"HTTP {status}; not true: {', '.join(failing)} (checks: {json.dumps(checks)})"
    return True, ", ".join(f"{name}: true" for name in required)


def probe(url: str, required: Sequence[str] = (), timeout_s: float = 4.0) -> tuple[bool, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/")
        r = conn.getresponse()
        raw = r.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return required_checks(r.status, body if isinstance(body, dict) else {}, required)
    except OSError as exc:
        return False, f"{url}: {exc}"
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m services.health URL [CHECK ...]", file=sys.stderr)
        return 2
    ok, why = probe(args[0], args[1:])
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
