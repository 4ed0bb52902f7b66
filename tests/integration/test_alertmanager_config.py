"""deploy/alertmanager/alertmanager.yml, checked by the real amtool and a real Alertmanager.

`amtool check-config` validates it; `amtool config routes test` shows where each kind of alert goes
(sqm's health alerts from Prometheus, sqm's KPI alerts by severity, team and audience, anything else),
every receiver reached by at least one case; and a real Alertmanager, with the example's routes and
inhibitions but receivers that send nothing, shows the inhibitions at work.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.peers import Alertmanager

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def kpi_alert(rule: str, severity: str, scope: str, **labels: str) -> dict[str, str]:
    """The labels sqm puts on a KPI alert it sends to Alertmanager (alerts/routing.py, alert_labels)."""
    kpi = {"service-level-low": "service_level", "csat-low": "csat", "nps-low": "nps"}.get(rule, "abandonment_rate")
    return {"alertname": rule, "rule": rule, "severity": severity, "scope": scope, "kpi": kpi, "window": "5m",
            **labels}


#: (what it stands for, labels, receivers in order)
ROUTES: list[tuple[str, dict[str, str], list[str]]] = [
    ("sqm health, critical", {"alertname": "SqmNoWorker", "severity": "critical"}, ["sqm-ops-pager"]),
    ("sqm health, warning", {"alertname": "SqmTargetDown", "severity": "warning", "instance": "api:8000",
                             "job": "sqm"}, ["sqm-ops-chat"]),
    ("KPI warning of team billing",
     kpi_alert("service-level-low", "warning", "team:billing", audience="on-call"), ["team-billing-chat"]),
    ("KPI warning of team tech", kpi_alert("abandonment-high", "warning", "team:tech", audience="on-call"),
     ["team-tech-chat"]),
    ("KPI critical of a team: pages, and its team hears of it",
     kpi_alert("abandonment-high", "critical", "team:billing", audience="on-call"),
     ["contact-center-pager", "team-billing-chat"]),
    ("KPI critical of a tier", kpi_alert("csat-low", "critical", "tier:vip", audience="on-call"),
     ["contact-center-pager", "contact-center-chat"]),
    ("KPI warning of a team without a route", kpi_alert("csat-low", "warning", "team:sales", audience="team-lead"),
     ["contact-center-chat"]),
    ("KPI warning of an agent", kpi_alert("agent-fcr-low", "warning", "agent:a7", audience="team-lead"),
     ["contact-center-chat"]),
    ("management never pages", kpi_alert("nps-low", "critical", "all", audience="management"),
     ["management-mail"]),
    ("another application's alert", {"alertname": "NodeDown", "severity": "critical"}, ["default"]),
]


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("amtool")
    assert binary, "amtool is not installed: `make test` installs it (Debian package prometheus-alertmanager)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def test_config_is_valid() -> None:
    out = amtool("check-config", str(CONFIG))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(("case", "labels", "receivers"), ROUTES, ids=[r[0] for r in ROUTES])
def test_route(case: str, labels: dict[str, str], receivers: list[str]) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    out = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={','.join(receivers)}",
                 *args)
    assert out.returncode == 0, f"{case}: {out.stdout}{out.stderr}"


def test_every_receiver_is_reached() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    declared = {r["name"] for r in config["receivers"]}
    reached = {name for _, _, receivers in ROUTES for name in receivers}
    assert reached == declared, f"receivers no case reaches: {declared - reached}"


def post(am: Alertmanager, *labelsets: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [{"labels": ls, "annotations": {"summary": "test"}, "startsAt": now.isoformat(),
             "endsAt": (now + timedelta(minutes=5)).isoformat()} for ls in labelsets]
    httpx.post(f"{am.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def inhibited(am: Alertmanager) -> dict[tuple[str, str, str], bool]:
    """(alertname, severity, scope) -> inhibited, of every alert Alertmanager holds."""
    got: list[dict[str, Any]] = am.alerts()
    return {(a["labels"]["alertname"], a["labels"].get("severity", ""), a["labels"].get("scope", "")):
            bool(a["status"]["inhibitedBy"]) for a in got}


def test_inhibitions_in_a_real_alertmanager(tmp_path: Path) -> None:
    """A critical KPI alert hides the warning of the same rule and scope (sqm turned it critical), and
    only that one; SqmNoWorker hides what follows from it; SqmMetricsAbsent hides SqmTargetDown."""
    config = yaml.safe_load(CONFIG.read_text())
    # the example's routes and inhibitions; receivers that send nothing (no placeholder URL is called)
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    am = Alertmanager(tmp_path)
    try:
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
        httpx.post(f"{am.url}/-/reload", timeout=5).raise_for_status()
        post(am, kpi_alert("service-level-low", "critical", "team:billing"),
             kpi_alert("service-level-low", "warning", "team:billing"),
             kpi_alert("service-level-low", "warning", "team:tech"),
             kpi_alert("abandonment-high", "warning", "team:billing"),
             {"alertname": "SqmNoWorker", "severity": "critical"},
             {"alertname": "SqmWorkerLagging", "severity": "warning", "worker": "w1"},
             {"alertname": "SqmMetricsAbsent", "severity": "critical"},
             {"alertname": "SqmTargetDown", "severity": "warning", "instance": "api:8000"},
             {"alertname": "SqmDeadLetters", "severity": "warning"})
        assert inhibited(am) == {
            ("service-level-low", "critical", "team:billing"): False,
            ("service-level-low", "warning", "team:billing"): True,
            ("service-level-low", "warning", "team:tech"): False,
            ("abandonment-high", "warning", "team:billing"): False,
            ("SqmNoWorker", "critical", ""): False,
            ("SqmWorkerLagging", "warning", ""): True,
            ("SqmMetricsAbsent", "critical", ""): False,
            ("SqmTargetDown", "warning", ""): True,
            ("SqmDeadLetters", "warning", ""): False,
        }
    finally:
        am.stop()
