"""A PostgreSQL server for the tests: the one named by SQM_TEST_POSTGRES_URL, or a throw-away one.

The throw-away server is Debian's `postgresql` binaries (`pg_config --bindir`; `make test` installs
the package when missing) run on a fresh cluster in a temporary directory, on a free port, with
fsync off. As root it runs as the `postgres` user (PostgreSQL refuses to run as root). Each test gets
a schema of its own (`schema_url`), dropped afterwards.

    server = ThrowawayPostgres().start(); url = server.url; ...; server.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from services.broker import free_port


def _bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise RuntimeError("PostgreSQL binaries are missing: `make test` installs Debian's postgresql package")
    return Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())


class ThrowawayPostgres:
    """A fresh cluster in its own temporary directory (not under pytest's, which the `postgres` user
    cannot enter), removed by `stop`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sqm-pg-"))
        self.port = free_port()
        self.bin = _bindir()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> ThrowawayPostgres:
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._start()
        return self

    def _start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                  "start", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off")

    def stop(self, mode: str = "fast", *, remove: bool = True) -> None:
        """Stop the server (`fast`: clients are disconnected); `remove=False` keeps the cluster for
        `restart` (an outage, not an end)."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        """Start a server stopped with `remove=False` again, on the same port with the same data."""
        self._start()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a server to test against: SQM_TEST_POSTGRES_URL if set, else a throw-away one."""
    configured = os.environ.get("SQM_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    server = ThrowawayPostgres().start()
    try:
        yield server.url
    finally:
        server.stop("immediate")


@contextlib.contextmanager
def schema_url(server_url: str) -> Iterator[str]:
    """A fresh schema on the server, as a URL whose connections use it; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    sep = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
