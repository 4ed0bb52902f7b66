"""The Prometheus rules for sqm's own health, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: `make test` installs it (Debian package prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=DEPLOY)


def alert_names() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "sqm-rules.yml").read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"]]


def test_rules_are_valid_and_named_by_convention() -> None:
    out = promtool("check", "rules", "sqm-rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in out.stdout


def test_rules_fire_when_they_should() -> None:
    out = promtool("test", "rules", "sqm-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load((DEPLOY / "sqm-rules.test.yml").read_text())["tests"]
    cases = [case for t in tests for case in t["alert_rule_test"]]
    for name in alert_names():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"sqm-rules.test.yml has no case where {name} fires"
        assert not all(expected), f"sqm-rules.test.yml has no case where {name} stays quiet"


async def test_metrics_exposition_passes_promtool_check_metrics() -> None:
    """`promtool check metrics` on a /metrics with figures of every kind: no `_count` suffix on a
    gauge, no `<counter>_created` gauges beside the counters."""
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app
    from services.config import Settings
    from services.loadgen import lifecycles, random_stream
    from tests.support.pipeline import run, to_messages

    now = time.time()
    sink = await run(to_messages(random_stream(400, now, seed=2) + lifecycles(200, now, seed=2)), now=now)
    app = create_app(Settings(metrics_agent_scopes=True), connect=False)
    for k, v in sink.all_records():
        app.state.view.apply(k, v)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        text = client.get("/metrics").text
    binary = shutil.which("promtool")
    assert binary
    out = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sqm_ingest_accepted_total" in text and "sqm_ingest_accepted_created" not in text
