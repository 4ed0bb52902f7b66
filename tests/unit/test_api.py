"""HTTP API shape on a view fed in-process (no broker): docs/api.md's responses and errors."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from alerts.history import AlertRepository
from alerts.rulebook import Rulebook
from api.app import create_app
from api.deps import DatabaseStatus
from api.metrics import metric_name
from db.engine import make_engine
from history.store import HistoryStore
from services.broker import free_port
from services.config import Settings
from services.loadgen import random_stream, ticket
from stream.folds import KpiConfig
from stream.kpis import KPIS, LIVE
from stream.state import PartitionState
from tests.support.fakes import MemorySink
from tests.support.pipeline import run, to_messages

TOKEN = "t0k3n-for-tests-0123456789"
LOOPBACK = "http://127.0.0.1"  # the API answers loopback Host names only, bound to loopback


@pytest.fixture
async def client(tmp_path):  # type: ignore[no-untyped-def]
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {kpi: csat, scope: all, target: 0.9}\n"
                       "  - {kpi: asa_s, scope: all, target: 20}\n")
    app = create_app(Settings(ingest_token=TOKEN, kpi_targets_file=str(targets)), connect=False)
    sink: MemorySink = await run(to_messages(random_stream(400, time.time(), seed=2)))
    for k, v in sink.all_records():
        app.state.view.apply(k, v)
    with TestClient(app, base_url=LOOPBACK) as c:
        yield c


def test_kpis_shape(client: TestClient) -> None:
    r = client.get("/v1/kpis", params={"scope": "all", "window": "1h"})
    assert r.status_code == 200
    body = r.json()
    assert body["scope"] == "all" and body["window"] == "1h" and body["as_of"].endswith("Z")
    assert {k.name for k in KPIS} | {d.name for d in LIVE if "all" in d.kinds} == set(body["kpis"])
    for v in body["kpis"].values():
        assert isinstance(v["count"], int) and (v["value"] is None or isinstance(v["value"], float))
    csat = body["kpis"]["csat"]
    assert csat["target"] == 0.9 and csat["achievement"] == pytest.approx(csat["value"] / 0.9)
    asa = body["kpis"]["asa_s"]
    assert asa["achievement"] == pytest.approx(20 / asa["value"])  # lower is better


def test_unknown_scope_is_404_and_bad_window_422(client: TestClient) -> None:
    assert client.get("/v1/kpis", params={"scope": "team:nobody", "window": "1h"}).status_code == 404
    assert client.get("/v1/kpis", params={"scope": "all", "window": "2h"}).status_code == 422


def test_scopes(client: TestClient) -> None:
    scopes = client.get("/v1/scopes").json()["scopes"]
    kinds = {s.split(":")[0] for s in scopes}
    assert kinds == {"all", "team", "agent", "channel", "tier", "queue"}
    assert client.get("/v1/scopes", params={"kind": "team"}).json()["scopes"] == ["team:billing", "team:sales",
                                                                                    "team:tech"]


def test_metrics_exposition(client: TestClient) -> None:
    client.app.state.feed.warm = True  # the view has read every record (/metrics serves counters only then)
    text = client.get("/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert metric_name("first_response_mean_s") == "sqm_first_response_mean_seconds"
    assert metric_name("service_level") == "sqm_service_level_ratio"
    sl = [s for s in fams["sqm_service_level_ratio"].samples if s.labels["scope"] == "all"]
    assert {s.labels["window"] for s in sl} == {"5m", "15m", "1h", "24h"}
    assert all(0 <= s.value <= 1 for s in sl)
    # agent series for the busiest agents only (SQM_METRICS_AGENT_SCOPES, 100 by default)
    view = client.app.state.view
    agents = {s.labels["scope"] for f in fams.values() for s in f.samples if s.labels.get("kind") == "agent"}
    assert agents and agents == set(view.busiest("agent", 100, now=time.time()))
    assert fams["sqm_events"].type == "counter"
    assert "sqm_deadletter" in fams and "sqm_backlog_tickets" in fams


def test_ingest_requires_token(client: TestClient) -> None:
    r = client.post("/v1/events", content=b"[]")
    assert r.status_code == 401
    r = client.post("/v1/events", content=b"[]", headers={"Authorization": "Bearer wrong-token-000000000"})
    assert r.status_code == 401


def test_ingest_without_broker_is_503(client: TestClient) -> None:
    ev = random_stream(1, time.time())[0]
    r = client.post("/v1/events", content=orjson.dumps([ev]), headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 503


def test_placeholder_token_refused() -> None:
    with pytest.raises(ValueError, match="(?s)ingest_token.*real secret of at least 16"):
        Settings(ingest_token="changeme")
    with pytest.raises(ValueError, match="(?s)admin_token.*real secret"):
        Settings(admin_token="short")


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["view_warm"] is False
    assert r.json()["checks"]["database"] is False  # not connected in this unit test
    assert client.get("/v1/rules").status_code == 503


def test_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/kpis", "/v1/scopes", "/v1/events", "/metrics", "/healthz", "/readyz", "/v1/rules",
            "/v1/rules/{rule_id}", "/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/ack",
            "/v1/silences", "/v1/silences/{silence_id}"} <= set(paths)


def test_a_database_that_is_down_costs_the_comparison_not_the_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real database that refuses connections: live figures answer 200, the comparison is left out
    with the reason, database routes answer 503 with Retry-After (never 500)."""
    app = create_app(Settings(admin_token=TOKEN * 2), connect=False)
    down = make_engine(f"postgresql://sqm@127.0.0.1:{free_port()}/sqm")  # nothing listens there
    app.state.kpi_history, app.state.rulebook = HistoryStore(down), Rulebook(down, "")
    app.state.history = AlertRepository(down)
    app.state.db = down
    sink = asyncio.run(run(to_messages(random_stream(200, time.time(), seed=3))))
    for k, v in sink.all_records():
        app.state.view.apply(k, v)
    with TestClient(app, base_url=LOOPBACK) as c:
        r = c.get("/v1/kpis", params={"compare": "yesterday"})
        assert r.status_code == 200 and "database is unavailable" in r.json()["compare_error"]
        assert "previous" not in r.json()["kpis"]["csat"] and r.json()["kpis"]["csat"]["count"] > 0
        r = c.get("/v1/rankings", params={"window": "24h"})
        assert r.status_code == 200 and r.json()["compare_error"] and r.json()["rankings"]
        assert "compare_error" not in c.get("/v1/kpis").json()
        for path in ("/v1/kpis/history?kpi=csat", "/v1/rules", "/v1/alerts", "/v1/silences"):
            r = c.get(path)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", path
            assert r.json()["detail"] == "the database is unavailable; try again later"
        r = c.put("/v1/targets", json={"kpi": "csat", "scope": "all", "target": 0.9},
                  headers={"Authorization": f"Bearer {TOKEN * 2}"})
        assert r.status_code == 503  # not connected: no target book at all
        assert c.get("/board").status_code == 200
    down.dispose()


def test_not_connected_yet_says_since_when_and_how_often_it_retries() -> None:
    app = create_app(Settings(), connect=False)
    app.state.database = DatabaseStatus(connecting=True, since=time.time() - 30, retry_s=8)
    with TestClient(app, base_url=LOOPBACK) as c:
        r = c.get("/v1/rules")
        assert r.status_code == 503 and r.headers["retry-after"] == "8"
        assert r.json()["detail"].startswith("the database is unavailable: not connected since ")
        assert c.get("/v1/kpis", params={"compare": "last_week"}).json()["compare_error"].endswith("not connected")


def test_agent_series_are_capped_at_the_busiest() -> None:
    """SQM_METRICS_AGENT_SCOPES=N serves the N agents with the most active minutes; 0 none; `true` all."""
    from api.metrics import ViewCollector
    from services.config import AGENTS_ALL
    from stream.view import View

    assert Settings(metrics_agent_scopes="true").metrics_agent_scopes == AGENTS_ALL
    assert Settings(metrics_agent_scopes="false").metrics_agent_scopes == 0
    now = time.time()
    events = [ticket("ticket.created", now - 60 * m, now - 60 * m, f"b{a}-{m}", team="tech", agent=f"a{a}")
              for a in range(5) for m in range(a + 1)]  # agent a<n> has events in n + 1 minutes
    ps = PartitionState(0, KpiConfig(agent_totals=True), 60, 7 * 86400)
    for i, ev in enumerate(events):
        ps.apply("tickets", i, orjson.dumps(ev), now=now)
    view = View(60)
    for k, v in ps.drain().records:
        view.apply(k, v)
    assert view.busiest("agent", 2, now=now) == ["agent:a3", "agent:a4"]

    def served(limit: int) -> set[str]:
        return {s.labels["scope"] for f in ViewCollector(view, _Warm(), limit).collect() for s in f.samples
                if s.labels.get("kind") == "agent"}

    assert served(2) == {"agent:a3", "agent:a4"} and served(0) == set() and len(served(AGENTS_ALL)) == 5


class _Warm:
    warm = True  # the view has read every record: /metrics serves its counters
    latest_record_ts = 0.0
