"""The Prometheus files of deploy/prometheus, checked and unit-tested by the real promtool.

- sqm-rules.yml (sqm's own health): valid, mixin style (CamelCase names, severity, summary, description,
  an absolute runbook_url whose anchor is a section of docs/operations.md), each alert firing and quiet
  in sqm-rules.test.yml.
- sqm-recording.yml: the recording rules of the metrics contract, named level:metric:operations, each
  one checked for values in sqm-recording.test.yml.
- prometheus.yml (the compose example): valid, loads both rule files.
- Every metric the rules read is one /metrics exposes (an absent metric makes a rule silent forever).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "prometheus"
MOUNT = "/etc/prometheus/sqm/"  # where compose mounts deploy/prometheus (prometheus.yml says so)

#: The recording rules the metrics contract fixes (docs/deploy/prometheus.md lists them).
CONTRACT_RATES = ["tickets_created", "tickets_resolved", "first_responses", "first_responses_within_target",
                  "calls_offered", "calls_answered", "calls_answered_within_threshold",
                  "calls_abandoned_after_cutoff", "csat_responses", "csat_satisfied_responses", "nps_responses",
                  "nps_promoters", "nps_detractors"]
CONTRACT_RATIOS = ["first_response_sla:ratio_rate1h", "first_response_mean:seconds_rate1h",
                   "service_level:ratio_rate1h", "abandonment:ratio_rate1h", "asa:seconds_rate1h",
                   "first_contact_resolution:ratio_rate1h", "csat:ratio_rate1h", "nps:score_rate1h"]
CONTRACT = [f"kind_scope:sqm_kpi_{c}:rate5m" for c in CONTRACT_RATES] + [f"kind_scope:sqm_kpi_{r}"
                                                                         for r in CONTRACT_RATIOS]


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: `make test` installs it (Debian package prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def rules(name: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / name).read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return rules("sqm-rules.yml")


def runbook_base() -> str:
    """The one place the runbook links are rooted: the header comment of sqm-rules.yml."""
    m = re.search(r"^# runbook base: (\S+)$", (DEPLOY / "sqm-rules.yml").read_text(), re.M)
    assert m, "sqm-rules.yml must name its runbook base in a `# runbook base: <url>` comment"
    return m.group(1)


def github_anchors(md: Path) -> set[str]:
    """GitHub's anchors of the headings of a markdown file (as tests/unit/test_docs.py makes them)."""
    out = set()
    for line in md.read_text().splitlines():
        if m := re.match(r"#+\s+(.*)", line):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def metrics_read(expr: str) -> set[str]:
    """The sqm metric names an expression selects (recorded names, with colons, excluded)."""
    return set(re.findall(r"(?<![:\w])(sqm_[a-z0-9_]+)(?![:\w])", expr))


def test_rule_files_are_valid() -> None:
    out = promtool("check", "rules", "sqm-rules.yml", "sqm-recording.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout
    assert f"SUCCESS: {len(rules('sqm-recording.yml'))} rules found" in out.stdout


def test_alerts_are_mixin_style_with_runbooks_that_resolve() -> None:
    base = runbook_base()
    assert re.fullmatch(r"https://\S+/docs/operations\.md", base), base
    sections = github_anchors(ROOT / "docs" / "operations.md")
    names = [a["alert"] for a in alerts()]
    assert len(set(names)) == len(names), "alert names must be unique"
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"Sqm(?:[A-Z][a-z0-9]+)+", name), f"{name}: CamelCase, prefixed Sqm"
        assert a["labels"]["severity"] in ("warning", "critical"), name
        assert set(a["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert a["annotations"]["runbook_url"] == f"{base}#{name.lower()}", name
        assert name.lower() in sections, f"docs/operations.md has no runbook section `### {name}`"
    # the base is documented where operators look for it
    assert base in (ROOT / "docs" / "deploy" / "prometheus.md").read_text()


def test_alerts_fire_and_stay_quiet_as_tested() -> None:
    out = promtool("test", "rules", "sqm-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load((DEPLOY / "sqm-rules.test.yml").read_text())["tests"]
    cases = [case for t in tests for case in t.get("alert_rule_test", [])]
    for name in [a["alert"] for a in alerts()]:
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert any(expected), f"sqm-rules.test.yml has no case where {name} fires"
        assert not all(expected), f"sqm-rules.test.yml has no case where {name} stays quiet"


def test_recording_rules_are_the_contract_and_named_by_convention() -> None:
    names = [r["record"] for r in rules("sqm-recording.yml")]
    assert len(set(names)) == len(names)
    missing = [n for n in CONTRACT if n not in names]
    assert not missing, f"recording rules of the metrics contract missing: {missing}"
    for rule in rules("sqm-recording.yml"):
        level, metric, ops = rule["record"].split(":")
        assert level in ("kind_scope", "type") and metric.startswith("sqm_") and ops, rule["record"]
        # a level names the labels that remain: the rule aggregates to exactly those
        by = set(re.findall(r"max by \(([^)]*)\)", rule["expr"]))
        assert by == {", ".join(level.split("_"))}, f"{rule['record']}: aggregates by {by}, not by its level"


def test_recording_rules_compute_what_their_tests_expect() -> None:
    out = promtool("test", "rules", "sqm-recording.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    tests = yaml.safe_load((DEPLOY / "sqm-recording.test.yml").read_text())["tests"]
    tested = {re.match(r"[\w:]+", case["expr"]).group(0)  # type: ignore[union-attr]
              for t in tests for case in t.get("promql_expr_test", []) if case["exp_samples"]}
    untested = [r["record"] for r in rules("sqm-recording.yml") if r["record"] not in tested]
    assert not untested, f"sqm-recording.test.yml checks no value of {untested}"


def test_every_metric_the_rules_read_is_exposed() -> None:
    from services.docgen import metric_families

    exposed = {name for name, *_ in metric_families()}
    for file in ("sqm-rules.yml", "sqm-recording.yml"):
        for rule in rules(file):
            unknown = metrics_read(rule["expr"]) - exposed
            assert not unknown, f"{file}: {rule.get('alert') or rule['record']} reads {unknown}, which /metrics " \
                                "does not expose (the rule would never fire or record)"


def test_example_prometheus_config_is_valid_and_loads_both_rule_files(tmp_path: Path) -> None:
    text = (DEPLOY / "prometheus.yml").read_text()
    assert MOUNT in text.split("\n\n")[0], "prometheus.yml must say at its top where it is mounted"
    config = yaml.safe_load(text)
    assert config["rule_files"] == [f"{MOUNT}sqm-rules.yml", f"{MOUNT}sqm-recording.yml"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["sqm"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["sqm"]["metrics_path"] == "/metrics"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # promtool checks the rule files too: point the mount at this folder
    local = tmp_path / "prometheus.yml"
    local.write_text(text.replace(MOUNT, f"{DEPLOY}/"))
    out = promtool("check", "config", str(local))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rule files found" in out.stdout


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
