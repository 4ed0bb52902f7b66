"""The Prometheus rules for sqm's own health, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: `make test` installs it (Debian package prometheus)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=DEPLOY)


def test_rules_are_valid_and_named_by_convention() -> None:
    out = promtool("check", "rules", "sqm-rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 8 rules found" in out.stdout


def test_rules_fire_when_they_should() -> None:
    out = promtool("test", "rules", "sqm-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
