"""Generated parts of the docs, from the code, so that they cannot drift from it.

    python -m services.docgen            # rewrite the generated blocks of docs/*.md
    python -m services.docgen --check    # exit 1 if a committed block differs (the test suite runs this)

- docs/configuration.md: every setting, from `Settings` (name, default, `Field(description=...)`).
- docs/metrics.md: every family /metrics can expose, from the collectors themselves (name, type,
  labels, help), and the KPI list from `stream.kpis.KPIS`.

A generated block sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`;
the prose around it is written by hand.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from alerts.history import AlertStats
from api.metrics import AlertStatsCache, build_registry, metric_name
from services.config import Settings
from stream.kpis import KPIS, LIVE
from stream.view import View

DOCS = Path(__file__).resolve().parents[1] / "docs"


def env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"SQM_{name.upper()}"


def default_of(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    d = field.default
    if d is None:
        return "unset"
    if isinstance(d, bool):
        return f"`{str(d).lower()}`"
    if isinstance(d, dict):
        return f"`{json.dumps(d)}`"
    if isinstance(d, float) and d.is_integer():
        return f"`{int(d)}`"
    return f"`{d}`"


def configuration_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name, field)}` | {default_of(field)} | {desc} |")
    return "\n".join(rows)


class _Feed:
    warm = True
    latest_record_ts = 1.0


def metric_families() -> list[tuple[str, str, list[str], str]]:
    """(name as exposed, type, labels, help) of every family the API's registry can expose."""
    cache = AlertStatsCache(lambda: AlertStats())
    cache.stats, cache.read_at = AlertStats(firing={"warning": 0}, delivery={"target": (0, 0, 0)},
                                            outbox_depth={"target": 0}), time.time()
    view = View(60)
    registry, ingest = build_registry(view, _Feed(), False, cache, partitions=6)
    ingest.rejected.labels("invalid")  # a child, so that the family shows its label
    out = []
    for fam in registry.collect():
        labels: list[str] = list(getattr(fam, "_labelnames", ()) or ())
        for s in fam.samples:
            labels += [k for k in s.labels if k not in labels]
        name = fam.name + ("_total" if fam.type == "counter" else "")
        out.append((name, fam.type, labels, fam.documentation))
    return sorted(out)


def metrics_table() -> str:
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, typ, labels, doc in metric_families():
        rows.append(f"| `{name}` | {typ} | {', '.join(f'`{x}`' for x in labels)} | {doc.replace('|', '/')} |")
    return "\n".join(rows)


def kpi_table() -> str:
    rows = ["| KPI (`/v1/kpis`) | metric | unit | better | formula |", "|---|---|---|---|---|"]
    for k in KPIS:
        better = "higher" if k.higher_is_better else "lower"
        rows.append(f"| `{k.name}` | `{metric_name(k.name)}` | {k.unit} | {better} | {k.help} |")
    for d in LIVE:
        kinds = ", ".join(sorted(d.kinds))
        better = "higher" if d.higher_is_better else "lower"
        rows.append(f"| `{d.name}` | `{metric_name(d.name)}` | {d.unit} | {better} | live state ({kinds}): {d.help} |")
    return "\n".join(rows)


BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "configuration": ("configuration.md", configuration_table),
    "metrics": ("metrics.md", metrics_table),
    "kpis": ("metrics.md", kpi_table),
}


def render(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no generated block {name!r}")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def regenerate(docs: Path = DOCS) -> dict[str, tuple[str, str]]:
    """file name -> (committed text, regenerated text)."""
    out: dict[str, tuple[str, str]] = {}
    for name, (file, make) in BLOCKS.items():
        before = out[file][1] if file in out else (docs / file).read_text()
        committed = out[file][0] if file in out else before
        out[file] = (committed, render(before, name, make()))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stale = []
    for file, (old, new) in regenerate().items():
        if old != new:
            stale.append(file)
            if "--check" not in args:
                (DOCS / file).write_text(new)
    if "--check" in args and stale:
        print(f"generated docs out of date: {stale}; run `python -m services.docgen`", file=sys.stderr)
        return 1
    print(f"{'out of date' if '--check' in args else 'rewrote'}: {stale or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
