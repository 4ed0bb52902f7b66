"""sqm's Grafana dashboards as code (grafana-foundation-sdk, Grafana 11 build).

`python deploy/grafana/generate.py` writes them to deploy/grafana/dashboards/; the tests compare
that output with the committed files and lint them. What the tests (and the Prometheus test that
evaluates every expression) read of the shipped JSON is in `shipped`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from . import agents, alerts_delivery, health, overview, queues_teams
from .shipped import (
    DASHBOARDS_DIR,
    Selector,
    Target,
    load,
    selectors,
    shipped_targets,
    substitute,
    targets,
    variable_values,
)

# uid -> builder, in the order the dashboards are listed in the docs
BUILDERS: dict[str, Callable[[], dm.Dashboard]] = {
    m.UID: m.build for m in (overview, queues_teams, agents, alerts_delivery, health)
}


def render(d: dm.Dashboard) -> str:
    """The dashboard's JSON as committed: sorted keys, 2-space indent, trailing newline."""
    return JSONEncoder(sort_keys=True, indent=2).encode(d) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{uid}.json": render(build()) for uid, build in BUILDERS.items()}


def write_all(out: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard into `out` (created if needed); stale sqm-*.json files there are removed."""
    out.mkdir(parents=True, exist_ok=True)
    files = render_all()
    for old in out.glob("sqm-*.json"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = ["BUILDERS", "DASHBOARDS_DIR", "Selector", "Target", "load", "render", "render_all", "selectors",
           "shipped_targets", "substitute", "targets", "variable_values", "write_all"]
