"""What a request may cost before its body is read: body limits measured on a real uvicorn server
(bytes it took off the socket), the write rate limit, and the Host header check."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import INGEST_BODY_LIMIT, create_app
from api.limits import TokenBuckets
from services.broker import free_port
from services.config import Settings

ADMIN = "admin-token-for-tests-0123456789"
INGEST = "ingest-token-for-tests-0123456789"
MB50 = 50 * 2**20
SMALL = 64 * 1024
SLACK = 512 * 1024  # what the socket may hold when the answer goes out (uvicorn reads 64 KiB at a time)


# -- the token bucket (pure) ---------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "burst", "times", "waits"), [
    (1.0, 3, [0, 0, 0, 0], [0, 0, 0, 1.0]),  # a burst, then one a second
    (2.0, 1, [0, 0, 0.25, 0.5], [0, 0.5, 0.25, 0]),  # refills at the rate
    (1.0, 2, [0, 0, 100, 100, 100], [0, 0, 0, 0, 1.0]),  # idle long: full again, never more than burst
])
def test_token_bucket_table(rate: float, burst: int, times: list[float], waits: list[float]) -> None:
    b = TokenBuckets(rate, burst)
    assert [b.take("c", now=t) for t in times] == pytest.approx(waits)


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200), st.floats(0.1, 50),
       st.integers(1, 20))
def test_token_bucket_never_lets_more_than_burst_plus_rate(times: list[float], rate: float, burst: int) -> None:
    b = TokenBuckets(rate, burst)
    times = sorted(times)
    allowed = sum(b.take("c", now=t) == 0 for t in times)
    assert allowed <= burst + rate * (times[-1] - times[0]) + 1e-6


def test_token_buckets_forget_idle_clients() -> None:
    b = TokenBuckets(rate=1.0, burst=2, max_clients=100)
    for i in range(1000):
        b.take(f"address 10.0.{i // 256}.{i % 256}", now=i * 0.01)
    assert len(b) <= 101
    assert b.take("address 10.0.3.231", now=10.0) == 0  # a recent one still has its bucket (1 left)


# -- the write rate limit ------------------------------------------------------------------------
def client(settings: Settings, base_url: str = "http://127.0.0.1") -> Iterator[TestClient]:
    with TestClient(create_app(settings, connect=False), base_url=base_url) as c:
        yield c


def test_writes_over_the_rate_are_429_with_retry_after_and_reads_have_buckets_of_their_own() -> None:
    for c in client(Settings(admin_token=ADMIN, api_write_rate=0.5, api_write_burst=3)):
        anon = [c.post("/v1/silences", json=[]).status_code for _ in range(4)]
        assert anon == [401, 401, 401, 429], "anonymous writes count against the client's address"
        r = c.post("/v1/silences", json=[])
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "at most 0.5 a second" in r.json()["detail"]
        auth = {"Authorization": f"Bearer {ADMIN}"}
        statuses = [c.delete("/v1/targets", params={"scope": "all", "kpi": "csat"}, headers=auth).status_code
                    for _ in range(4)]
        assert statuses == [503, 503, 503, 429], "a key has a bucket of its own (503: no database here)"
        assert all(c.get("/v1/kpis").status_code == 200 for _ in range(50)), "writes do not spend the reads"


def test_reads_over_the_rate_are_429_per_client_and_per_key_and_probes_are_not_counted() -> None:
    for c in client(Settings(admin_token=ADMIN, api_read_rate=0.5, api_read_burst=5)):
        assert [c.get("/v1/kpis").status_code for _ in range(6)] == [200] * 5 + [429]
        r = c.get("/v1/scopes")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many reads" in r.json()["detail"]
        auth = {"Authorization": f"Bearer {ADMIN}"}
        assert [c.get("/v1/kpis", headers=auth).status_code for _ in range(6)] == [200] * 5 + [429], \
            "a key has a bucket of its own"
        assert {c.get("/healthz").status_code for _ in range(20)} == {200}, "probes are never limited"
        assert c.get("/board/static/board.css").status_code != 429


def test_read_rate_zero_means_no_read_limit() -> None:
    for c in client(Settings(api_read_rate=0)):
        assert {c.get("/v1/kpis").status_code for _ in range(300)} == {200}


def test_rate_zero_means_no_limit() -> None:
    for c in client(Settings(api_write_rate=0)):
        assert {c.post("/v1/silences", json=[]).status_code for _ in range(200)} == {403}


# -- trusted hosts -------------------------------------------------------------------------------
WIDE = {"api_host": "0.0.0.0", "read_auth": "open"}


@pytest.mark.parametrize(("settings", "host", "status"), [
    (Settings(), "127.0.0.1:8000", 200),
    (Settings(), "localhost", 200),
    (Settings(api_host="::1"), "[::1]:8000", 200),
    (Settings(), "evil.example", 400),  # DNS rebinding onto a loopback-bound API
    (Settings(**WIDE, api_allowed_hosts="sqm.example.com,*.corp.example"), "sqm.example.com", 200),
    (Settings(**WIDE, api_allowed_hosts="sqm.example.com,*.corp.example"), "a.corp.example:443", 200),
    (Settings(**WIDE, api_allowed_hosts="sqm.example.com,*.corp.example"), "127.0.0.1", 400),
    (Settings(**WIDE, api_allowed_hosts="*"), "anything.example", 200),
])
def test_host_header_is_checked(settings: Settings, host: str, status: int) -> None:
    for c in client(settings):
        assert c.get("/v1/kpis", headers={"Host": host}).status_code == status


def test_beyond_loopback_the_allowed_hosts_are_required() -> None:
    with pytest.raises(ValueError, match="SQM_API_ALLOWED_HOSTS"):
        create_app(Settings(api_host="0.0.0.0", read_auth="key"), connect=False)
    with pytest.raises(ValueError, match="not a host name or pattern"):
        Settings(api_allowed_hosts="sqm.*.example")


@pytest.mark.parametrize("read_auth", ["open", "key"])
def test_beyond_loopback_the_read_auth_must_be_said(read_auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="SQM_READ_AUTH=key"):
        create_app(Settings(api_host="0.0.0.0", api_allowed_hosts="*"), connect=False)
    monkeypatch.setenv("SQM_READ_AUTH", read_auth)  # said in the environment, as a deployment says it
    assert create_app(Settings(api_host="0.0.0.0", api_allowed_hosts="*"), connect=False)
    assert create_app(Settings(), connect=False), "on loopback the default (open) stands"


# -- body limits on a real server ----------------------------------------------------------------
class Counted(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, counting every byte it takes off the socket."""

    read = 0

    def data_received(self, data: bytes) -> None:
        Counted.read += len(data)
        super().data_received(data)


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """The app on a real uvicorn server in a thread: (its port, its event loop)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=Counted, loop="asyncio",
                                           log_level="warning", lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port, loop
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


def post(port: int, path: str, *, framing: str, token: str | None = None) -> tuple[int, int, int]:
    """POST 50 MB as fast as the server takes them: (status, bytes the server read, bytes sent).
    `framing`: `length` (an honest Content-Length), `lie` (Content-Length 100), `chunked`."""
    Counted.read = 0
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Authorization: Bearer {token}\r\n" if token else ""
    head += {"length": f"Content-Length: {MB50}\r\n", "lie": "Content-Length: 100\r\n",
             "chunked": "Transfer-Encoding: chunked\r\n"}[framing]
    chunk = b"[" + b"1," * 32767 + b"1"  # 64 KiB
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head.encode() + b"\r\n")
        with contextlib.suppress(OSError):  # reset or stalled: the server stopped reading
            while sent < MB50:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if framing == "chunked" else chunk)
                sent += len(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer:
                part = s.recv(4096)
                if not part:
                    break
                answer += part
    time.sleep(0.2)  # the server's last reads
    return int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0, Counted.read, sent


def test_a_50_mb_body_costs_at_most_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(Settings(admin_token=ADMIN, ingest_token=INGEST), connect=False)

    async def producer_not_started() -> None:  # so that POST /v1/events reads its body
        app.state.producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")

    with served(app) as (port, loop):
        cases = [  # (path, framing, token, status, most the server may read)
            ("/v1/rules", "length", None, 413, SLACK),
            ("/v1/rules", "chunked", None, 413, SMALL + SLACK),
            ("/v1/rules", "lie", None, 422, SLACK),
            ("/v1/rules", "chunked", ADMIN, 413, SMALL + SLACK),
            ("/v1/events", "length", INGEST, 413, SLACK),
            ("/v1/events", "chunked", None, 401, SLACK),  # answered before the body: the rest is never read
            ("/v1/events", "chunked", INGEST, 503, SLACK),  # no broker: answered before the body too
        ]
        report = []
        for path, framing, token, status, most in cases:
            got, read, sent = post(port, path, framing=framing, token=token)
            report.append(f"{path} {framing} {'token' if token else 'anonymous'}: {got}, server read "
                          f"{read / 1024:.0f} KiB, client sent {sent / 2**20:.1f} MiB")
            assert got == status, report[-1]
            assert read <= most, report[-1]
        asyncio.run_coroutine_threadsafe(producer_not_started(), loop).result(5)
        got, read, sent = post(port, "/v1/events", framing="chunked", token=INGEST)
        report.append(f"/v1/events chunked token, with a producer: {got}, server read {read / 1024:.0f} KiB, "
                      f"client sent {sent / 2**20:.1f} MiB")
        assert got == 413 and read <= INGEST_BODY_LIMIT + SLACK, report[-1]
        asyncio.run_coroutine_threadsafe(app.state.producer.stop(), loop).result(5)
    with capsys.disabled():
        print("\n" + "\n".join(report))
