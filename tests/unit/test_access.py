"""API keys, SQM_READ_AUTH, the board's key cookie, and body limits enforced before the body is read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.keys import KeyStore, Principal
from db.engine import connect
from services import keys as keys_cli
from services.config import Settings
from services.loadgen import random_stream
from tests.support.pipeline import run, to_messages

ADMIN = "admin-token-for-tests-0123456789"
LOOPBACK = "http://127.0.0.1"  # the API answers loopback Host names only, bound to loopback


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(connect(f"sqlite:///{tmp_path}/keys.db"))


def client_with(settings: Settings, keys: dict[str, Principal]) -> Iterator[TestClient]:
    app = create_app(settings, connect=False)
    app.state.keys.value = keys
    with TestClient(app, base_url=LOOPBACK) as c:
        yield c


def test_keys_are_stored_hashed_and_revocable(store: KeyStore) -> None:
    key = store.create("wall-3", "read")
    assert key.startswith("sqm_") and len(key) > 30
    snap = store.snapshot()
    assert list(snap.values()) == [Principal("wall-3", "read")] and key not in str(snap)
    info = store.list()[0]
    assert store.revoke(info.id) and not store.revoke(info.id)
    assert store.snapshot() == {}
    with pytest.raises(ValueError, match="role"):
        store.create("x", "root")  # type: ignore[arg-type]


def test_the_cli_creates_lists_and_revokes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQM_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    runner = CliRunner()
    created = runner.invoke(keys_cli.app, ["create", "lead-laptop", "--role", "admin"])
    assert created.exit_code == 0, created.output
    assert "never on a wall screen" in created.stderr  # the advice fits the role: admin keys stay off walls
    read = runner.invoke(keys_cli.app, ["create", "wall-3", "--role", "read"])
    assert "sign in once at /board/login on the wall screen" in read.stderr
    key = created.stdout.splitlines()[0]
    listed = runner.invoke(keys_cli.app, ["list"])
    key_id = key.split("_")[1]
    assert key_id in listed.stdout and "lead-laptop" in listed.stdout and key not in listed.stdout
    assert runner.invoke(keys_cli.app, ["revoke", key_id]).exit_code == 0
    assert runner.invoke(keys_cli.app, ["revoke", key_id]).exit_code == 1
    assert runner.invoke(keys_cli.app, ["create", "x", "--role", "root"]).exit_code != 0


def test_read_auth_key_needs_a_read_key_or_better(store: KeyStore) -> None:
    read, ingest = store.create("wall", "read"), store.create("pipe", "ingest")
    for c in client_with(Settings(read_auth="key", admin_token=ADMIN), store.snapshot()):
        assert c.get("/v1/kpis").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200, "liveness stays open"
        for token in (read, ingest, ADMIN):
            assert c.get("/v1/kpis", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/v1/kpis", headers={"Authorization": "Bearer sqm_nope_nope"}).status_code == 401
        # a read key cannot write
        r = c.post("/v1/silences", json={}, headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 403 and "admin is required" in r.json()["detail"]
        # the board: a sign-in form once, then a signed session cookie (never the key) for /board only
        r = c.get("/board?team=billing")
        assert r.status_code == 401 and 'action="/board/login"' in r.text and 'value="/board?team=billing"' in r.text
        own = {"Origin": "http://127.0.0.1"}
        r = c.post("/board/login", data={"key": read, "next": "/board?team=billing"}, headers=own,
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/board?team=billing"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/board" in cookie
        assert read.lower() not in cookie and "sqm_session=s1." in cookie, "the cookie holds a session, not the key"
        assert c.get("/board?team=billing").status_code == 200
        assert c.get("/v1/kpis").status_code == 401, "the board's session opens the board only"
        wall = next(k for k in store.list() if k.name == "wall")
        store.revoke(wall.id)  # the session ends with its key (the API re-reads the keys every 10 s)
        c.app.state.keys.value = store.snapshot()  # type: ignore[attr-defined]
        assert c.get("/board?team=billing").status_code == 401
        # a key in the URL is never taken; a bad key, a foreign page or an open redirect are refused
        r = c.get(f"/board?team=billing&key={ingest}")
        assert r.status_code == 400 and "no longer accepted" in r.text and ingest not in r.text
        assert c.post("/board/login", data={"key": "sqm_bad_bad"}, headers=own).status_code == 401
        r = c.post("/board/login", data={"key": ingest}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403, "a cross-site form would sign the victim in as the attacker"
        r = c.post("/board/login", data={"key": ingest, "next": "//evil.example/x"}, headers=own,
                   follow_redirects=False)
        assert r.headers["location"] == "/board"


def test_reads_are_open_by_default_and_unconfigured_writes_say_why() -> None:
    for c in client_with(Settings(), {}):
        assert c.get("/v1/kpis").status_code == 200
        r = c.post("/v1/silences", json={})
        assert r.status_code == 403 and "SQM_ADMIN_TOKEN" in r.json()["detail"]
        r = c.post("/v1/events", content=b"[]")
        assert r.status_code == 403 and "SQM_INGEST_TOKEN" in r.json()["detail"]


def test_keys_not_read_yet_answer_503_and_the_tokens_work() -> None:
    """The database has been down since the API started: keys cannot be checked (503, not 401), the
    tokens from the settings can."""
    app = create_app(Settings(read_auth="key", admin_token=ADMIN), connect=False)
    app.state.keys.loaded = False
    with TestClient(app, base_url=LOOPBACK) as c:
        r = c.get("/v1/kpis", headers={"Authorization": "Bearer sqm_abcd_efgh"})
        assert r.status_code == 503 and r.headers["retry-after"] and "API keys cannot be checked" in r.text
        assert c.get("/v1/kpis", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        assert c.get("/v1/kpis").status_code == 401
    app = create_app(Settings(), connect=False)
    app.state.keys.loaded = False
    with TestClient(app, base_url=LOOPBACK) as c:  # no token: whether an ingest key exists is unknown yet
        assert c.post("/v1/events", content=b"[]").status_code == 503


def test_bodies_are_limited_before_they_are_read() -> None:
    for c in client_with(Settings(admin_token=ADMIN), {}):
        t0 = time.perf_counter()
        r = c.post("/v1/rules", headers={"Content-Length": str(50 * 2**20), "Content-Type": "application/json"},
                   content=b"x" * 10)  # the announced 50 MB are never read
        assert r.status_code == 413 and time.perf_counter() - t0 < 1.0
        r = c.post("/v1/rules", content=b"[" + b"1," * 40000 + b"1]",
                   headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        assert r.status_code == 413
        big = b"x" * (2 * 2**20)  # 2 MB is within ingest's 10 MB: refused for the missing token, not the size
        assert c.post("/v1/events", content=big).status_code == 401

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(100):
                yield b"x" * 4096

        assert c.post("/v1/rules", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413


async def test_rankings_and_tickets_from_the_view(tmp_path: Path) -> None:
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {kpi: csat, scope: 'team:*', target: 0.8}\n"
                       "  - {kpi: csat, scope: 'team:tech', target: 0.9}\n")
    app = create_app(Settings(kpi_targets_file=str(targets)), connect=False)
    now = time.time()
    sink = await run(to_messages(random_stream(900, now, seed=6)), now=now)
    for k, v in sink.all_records():
        app.state.view.apply(k, v)
    with TestClient(app, base_url=LOOPBACK) as c:
        body = c.get("/v1/rankings", params={"kind": "team", "kpi": "csat", "window": "24h"}).json()
        rows = body["rankings"]
        assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
        values = [r["value"] for r in rows]
        assert values == sorted(values, reverse=True)
        tech = next(r for r in rows if r["scope"] == "team:tech")
        billing = next(r for r in rows if r["scope"] == "team:billing")
        assert tech["target"] == 0.9 and billing["target"] == 0.8, "a scope's own target wins over team:*"
        assert tech["achievement"] == pytest.approx(tech["value"] / 0.9)
        kpis = c.get("/v1/kpis", params={"scope": "team:tech", "window": "24h"}).json()["kpis"]
        assert (tech["value"], tech["count"]) == (kpis["csat"]["value"], kpis["csat"]["count"])
        lower = c.get("/v1/rankings", params={"kind": "agent", "kpi": "asa_s", "window": "24h"}).json()["rankings"]
        assert [r["value"] for r in lower] == sorted(r["value"] for r in lower), "lower is better: ascending"
        assert c.get("/v1/rankings", params={"kind": "agent", "kpi": "calls_waiting"}).status_code == 422
        assert all(r["count"] >= 5 for r in c.get("/v1/rankings", params={
            "kind": "agent", "kpi": "csat", "window": "24h", "min_count": 5}).json()["rankings"])
