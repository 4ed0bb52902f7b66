"""KPI targets over the API beside the targets file, on a running API with its database."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from services.broker import EmbeddedBroker
from services.loadgen import random_stream
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
TOKEN = "targets-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_targets_file_and_api(broker: EmbeddedBroker, tmp_path: Path) -> None:
    file = tmp_path / "targets.yaml"
    file.write_text("targets:\n  - {kpi: csat, scope: all, target: 0.9}\n")
    stack = Stack(broker, tmp_path, SQM_ADMIN_TOKEN=TOKEN, SQM_KPI_TARGETS_FILE=str(file))
    try:
        stack.worker()
        stack.api()
        events = random_stream(300, time.time(), seed=61)
        produce(stack, events)
        wait_for(lambda: stack.seen_messages() >= len(events), 60, "events", stack)
        url = stack.url + "/v1/targets"
        assert httpx.put(url, json={"kpi": "service_level", "scope": "team:*", "target": 0.8}).status_code == 401
        r = httpx.put(url, json={"kpi": "service_level", "scope": "team:*", "target": 0.8}, headers=AUTH)
        assert r.status_code == 200 and r.json()["source"] == "api"
        r = httpx.put(url, json={"kpi": "service_level", "scope": "team:billing", "target": 0.85}, headers=AUTH)
        assert r.status_code == 200
        assert httpx.put(url, json={"kpi": "csat", "scope": "all", "target": 0.5}, headers=AUTH).status_code == 409
        assert httpx.put(url, json={"kpi": "nope", "scope": "all", "target": 1}, headers=AUTH).status_code == 422
        listed = {(t["scope"], t["kpi"]): (t["target"], t["source"]) for t in httpx.get(url).json()["targets"]}
        assert listed == {("all", "csat"): (0.9, "file"), ("team:*", "service_level"): (0.8, "api"),
                          ("team:billing", "service_level"): (0.85, "api")}
        tech = stack.kpis("team:tech", "1h")["service_level"]
        billing = stack.kpis("team:billing", "1h")["service_level"]
        assert tech["target"] == 0.8 and billing["target"] == 0.85, "a scope's own target wins over team:*"
        r = httpx.delete(url, params={"scope": "team:billing", "kpi": "service_level"}, headers=AUTH)
        assert r.status_code == 204
        assert stack.kpis("team:billing", "1h")["service_level"]["target"] == 0.8
        assert httpx.delete(url, params={"scope": "all", "kpi": "csat"}, headers=AUTH).status_code == 409
        assert httpx.delete(url, params={"scope": "all", "kpi": "aht_s"}, headers=AUTH).status_code == 404
    finally:
        stack.stop()
