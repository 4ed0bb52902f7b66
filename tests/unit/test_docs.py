"""The docs fit the code: generated tables are current, links and runbook anchors resolve."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services import docgen

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "HISTORY.md"]


def anchors(md: Path) -> set[str]:
    """GitHub's anchors of the headings of a markdown file."""
    out = set()
    for line in md.read_text().splitlines():
        if m := re.match(r"#+\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_generated_tables_match_the_code() -> None:
    stale = [f for f, (old, new) in docgen.regenerate().items() if old != new]
    assert not stale, f"run `python -m services.docgen`: {stale} differ from the code"


def test_every_setting_and_metric_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert all(f"`{docgen.env_name(n, f)}`" in text for n, f in docgen.Settings.model_fields.items())
    metrics = (ROOT / "docs" / "metrics.md").read_text()
    assert all(f"`{name}`" in metrics for name, *_ in docgen.metric_families())


def test_each_health_alert_has_its_own_runbook_section() -> None:
    path = ROOT / "deploy" / "prometheus" / "sqm-rules.yml"
    base = re.search(r"^# runbook base: (\S+)$", path.read_text(), re.M)
    assert base, "sqm-rules.yml names its runbook base in a `# runbook base:` line"
    assert base.group(1).endswith("/docs/operations.md")
    ops = anchors(ROOT / "docs" / "operations.md")
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook_url"] == f"{base.group(1)}#{rule['alert'].lower()}"
            assert rule["alert"].lower() in ops, f"docs/operations.md has no section {rule['alert']}"


def test_relative_links_resolve() -> None:
    broken = []
    for md in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.exists():
                broken.append(f"{md.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{md.name}: {target} (no such heading)")
    assert not broken, broken


def test_readme_orients_in_about_200_lines() -> None:
    n = len((ROOT / "README.md").read_text().splitlines())
    assert 120 <= n <= 220, f"README.md has {n} lines: it orients; details belong in docs/"
