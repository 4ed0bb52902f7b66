"""100,000 distinct values of every dimension through the batch step, the API's view, /metrics and
/v1/scopes: everything stays bounded by the caps, and every event is still counted."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from services.config import Settings
from services.loadgen import survey
from stream.caps import DEFAULT_CAPS
from tests.support.pipeline import run, to_messages

PARTITIONS = 6
N = 100_000


async def test_a_flood_of_distinct_values_stays_bounded() -> None:
    now = time.time()
    events = [survey(now - 30, f"s{i}", team=f"team-{i}", channel=f"ch-{i}", customer_tier=f"tier-{i}",
                     agent=f"agent-{i}", csat=1 + i % 5) for i in range(N)]
    sink = await run(to_messages(events, partitions=PARTITIONS), batch=2000, now=now)
    app = create_app(Settings(), connect=False)
    for k, v in sink.all_records():
        app.state.view.apply(k, v)
    app.state.feed.warm = True  # every record read: /metrics serves its counters too
    with TestClient(app, base_url="http://127.0.0.1") as client:
        scopes = client.get("/v1/scopes").json()["scopes"]
        by_kind: dict[str, int] = {}
        for s in scopes:
            kind = s.split(":", 1)[0]
            by_kind[kind] = by_kind.get(kind, 0) + 1
        for kind in ("team", "channel", "tier", "agent"):  # the most active values, and `other`
            assert by_kind[kind] <= DEFAULT_CAPS[kind] + 1, (kind, by_kind[kind])
            assert f"{kind}:other" in scopes
        assert client.get("/v1/kpis", params={"scope": "all", "window": "1h"}).json()["kpis"][
            "survey_responses"]["count"] == N
        other = client.get("/v1/kpis", params={"scope": "team:other", "window": "1h"}).json()["kpis"]
        assert other["survey_responses"]["count"] >= N - DEFAULT_CAPS["team"] * PARTITIONS

        t0 = time.perf_counter()
        text = client.get("/metrics").text
        print(f"/metrics: {len(text) / 1e6:.2f} MB in {time.perf_counter() - t0:.2f} s")
    # about 2.4 MB without agents (29 windowed KPIs since the comment KPIs), 0.8 MB for the 100 busiest
    assert len(text) < 3_500_000, len(text)
    scoped = {s.labels["scope"] for f in text_string_to_metric_families(text) for s in f.samples
              if "scope" in s.labels}
    for kind in ("team", "channel", "tier"):
        assert len({s for s in scoped if s.startswith(f"{kind}:")}) <= DEFAULT_CAPS[kind] + 1, kind
    assert "team:other" in scoped
    agents = {s for s in scoped if s.startswith("agent:")}
    assert 0 < len(agents) <= 100, len(agents)  # the busiest 100 (SQM_METRICS_AGENT_SCOPES)
    overflow = {s.labels["dimension"]: s.value for f in text_string_to_metric_families(text)
                if f.name == "sqm_scope_overflow_events" for s in f.samples if s.name.endswith("_total")}
    assert overflow["team"] >= N - DEFAULT_CAPS["team"] * PARTITIONS and overflow["queue"] == 0
