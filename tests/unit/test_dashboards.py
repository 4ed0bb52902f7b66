"""The Grafana dashboards: generated JSON is current, and it passes a lint of dashboard-linter's useful rules.

The lint re-implements grafana/dashboard-linter's rules that matter for sqm (templated datasource
used by every panel and query, `$__rate_interval` in graphs, counters only under rate/increase,
query variables re-read on time change, units and descriptions, job matchers) and adds sqm's own:
every metric exists (docs/metrics.md or the recording rules), KPI counters are deduplicated over
the API replicas with `max by (scope)` and never averaged, every expression parses (promtool).
Instance matchers: only on the per-replica figures (see PER_REPLICA); every other sqm series is
served alike by all API replicas and deduplicated with max, so an instance filter would mean nothing.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.grafana.sqm_dashboards import (
    BUILDERS,
    DASHBOARDS_DIR,
    Selector,
    load,
    selectors,
    substitute,
    targets,
    variable_values,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDING_RULES = ROOT / "deploy" / "prometheus" / "sqm-recording.yml"
UIDS = {"sqm-overview", "sqm-queues-teams", "sqm-agents", "sqm-alerts-delivery", "sqm-health"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Figures each API replica has of its own (not read from the shared state): per instance
PER_REPLICA = {"sqm_view_warm", "sqm_view_last_record_age_seconds", "sqm_view_records_total",
               "sqm_ingest_accepted_total", "sqm_ingest_rejected_total", "sqm_alert_stats_age_seconds"}
# Grafana unit ids the dashboards may use (a subset of Grafana's value formats)
UNITS = {"none", "short", "percent", "percentunit", "s", "ms", "dtdurations", "bytes", "decbytes", "cps", "cpm",
         "ops", "opm", "reqps", "rpm", "bool", "bool_yes_no"}
QUERY_PANELS = {"stat", "timeseries", "table", "bargauge", "gauge", "state-timeline"}

DASHBOARDS = load()


Dashboards = dict[str, dict[str, Any]]


def all_panels(ds: Dashboards = DASHBOARDS) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for d in ds.values():
        for p in d["panels"]:
            yield d, p
            for inner in p.get("panels", []):
                yield d, inner


def all_targets(ds: Dashboards = DASHBOARDS) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    for d, p in all_panels(ds):
        for t in p.get("targets", []):
            yield d, p, t


def where(d: dict[str, Any], p: dict[str, Any], t: dict[str, Any] | None = None) -> str:
    return f"{d['uid']} / {p.get('title')!r}" + (f" / {t.get('refId')}" if t else "")


# -- PromQL scanner (sqm_dashboards.shipped.selectors) -------------------------------------------

def test_scanner_finds_selectors_not_functions_labels_or_strings() -> None:
    found = selectors('sum by (scope) (max by (scope) (rate(a_total{job=~"$job", scope=~"x:.+"}[$__rate_interval]))) '
                      '/ on (scope) (b > 0) * 100 + kind_scope:c:rate5m{kind="team"} '
                      '+ label_replace(d{x="}{"}, "dst", "$1 sum(e)", "src", "(.*)")')
    assert [(s.name, s.range, s.func) for s in found] == [
        ("a_total", "$__rate_interval", "rate"), ("b", None, None), ("kind_scope:c:rate5m", None, None),
        ("d", None, "label_replace")]
    assert found[0].matchers == 'job=~"$job", scope=~"x:.+"' and found[3].matchers == 'x="}{"'


def variable_selectors(d: dict[str, Any]) -> Iterator[tuple[str, Selector]]:
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"])
            assert m, f"{d['uid']}: variable {v['name']} query is not label_values(<selector>, <label>)"
            for s in selectors(m.group(1)):
                yield v["name"], s


# -- generated output ----------------------------------------------------------------------------

def test_committed_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "deploy/grafana/generate.py", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    fresh = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in DASHBOARDS_DIR.glob("*.json")}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"run `python deploy/grafana/generate.py`: {stale} differ from the generator's output"
    assert all(text.endswith(b"}\n") for text in fresh.values())


def test_uids_are_fixed_and_unique() -> None:
    assert set(BUILDERS) == UIDS
    assert set(DASHBOARDS) == UIDS, "run `python deploy/grafana/generate.py`"
    assert {p.name for p in DASHBOARDS_DIR.glob("*.json")} == {f"{u}.json" for u in UIDS}
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)
    for d in DASHBOARDS.values():
        assert "id" not in d, "a numeric id would clash with the Grafana that loads the file: uid only"
        assert d["description"] and "sqm" in d["tags"] and d["refresh"] and d["time"]["from"].startswith("now-")
        assert d["schemaVersion"] >= 39, "a Grafana 11 dashboard"


def test_no_import_placeholders() -> None:
    """File provisioning leaves `__inputs` / `${DS_...}` unresolved (grafana#10786): never ship them."""
    for path in DASHBOARDS_DIR.glob("*.json"):
        text = path.read_text()
        for bad in ("__inputs", "__requires", "${DS_", "$DS_"):
            assert bad not in text, f"{path.name} contains {bad}"


def test_one_prometheus_datasource_variable() -> None:
    for d in DASHBOARDS.values():
        ds = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        assert len(ds) == 1, d["uid"]
        assert (ds[0]["name"], ds[0]["label"], ds[0]["query"]) == ("datasource", "Data source", "prometheus")
        assert "current" not in ds[0], "a pinned datasource uid would not exist in another Grafana"


def _datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield path, v
            yield from _datasource_refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _datasource_refs(v, f"{path}/{i}")


def lint_datasource(ds: Dashboards) -> list[str]:
    bad = [where(d, p) for d, p in all_panels(ds) if p["type"] != "row" and p.get("datasource") != DATASOURCE]
    bad += [where(d, p, t) for d, p, t in all_targets(ds) if t.get("datasource") != DATASOURCE]
    bad += [f"{d['uid']} / ${v['name']}" for d in ds.values() for v in d["templating"]["list"]
            if v["type"] == "query" and v.get("datasource") != DATASOURCE]
    # and nothing anywhere names another datasource
    return bad + [f"{d['uid']}{path}" for d in ds.values() for path, ref in _datasource_refs(d) if ref != DATASOURCE]


def test_every_panel_target_and_variable_uses_the_datasource_variable() -> None:
    assert not lint_datasource(DASHBOARDS), lint_datasource(DASHBOARDS)


def test_query_variables_are_multi_all_and_refreshed_on_time_change() -> None:
    for d in DASHBOARDS.values():
        names = [v["name"] for v in d["templating"]["list"]]
        assert names[:2] == ["datasource", "job"], d["uid"]
        for v in d["templating"]["list"][1:]:
            assert v["type"] == "query" and v["label"] == v["name"], (d["uid"], v["name"])
            assert v["refresh"] == 2, f"{d['uid']} ${v['name']}: refresh on time range change"
            assert v["multi"] and v["includeAll"] and v["allValue"] == ".+", (d["uid"], v["name"])
            assert v["current"]["value"] == "$__all", (d["uid"], v["name"])
            if v["name"] in {"team", "queue", "channel", "tier", "agent"}:
                m = re.fullmatch(r"/(.*)/", v["regex"])
                got = re.match(m.group(1), f"{v['name']}:billing desk") if m else None
                assert got and got.group(1) == "billing desk", f"{d['uid']} ${v['name']}: regex {v['regex']}"
                assert f'kind="{v["name"]}"' in v["query"]


def test_every_variable_is_used() -> None:
    for d in DASHBOARDS.values():
        used = " ".join([t["expr"] for _, _, t in all_targets({d["uid"]: d})]
                        + [v["query"] for v in d["templating"]["list"] if v["type"] == "query"])
        for v in d["templating"]["list"][1:]:
            assert re.search(rf"\$(\{{)?{v['name']}\b", used), f"{d['uid']}: ${v['name']} is used by no query"


# -- PromQL rules ---------------------------------------------------------------------------------

def lint_ranges(ds: Dashboards) -> list[str]:
    """dashboard-linter's target-rate-interval-rule, with `$__range` allowed in instant queries."""
    bad = []
    for d, p, t in all_targets(ds):
        allowed = {"$__range", "$__rate_interval"} if t.get("instant") else {"$__rate_interval"}
        for s in selectors(t["expr"]):
            if s.range is not None and (s.range not in allowed or s.func not in {"rate", "irate", "increase"}):
                bad.append(f"{where(d, p, t)}: {s.func}({s.name}[{s.range}])")
        if "$__range" in t["expr"] and not t.get("instant"):
            bad.append(f"{where(d, p, t)}: $__range in a range query (every point would cover the whole range)")
    return bad


def lint_counters(ds: Dashboards) -> list[str]:
    """dashboard-linter's target-counter-agg-rule: a `_total` only under rate, irate or increase."""
    return [f"{where(d, p, t)}: {s.name}" for d, p, t in all_targets(ds) for s in selectors(t["expr"])
            if s.name.endswith("_total") and (s.range is None or s.func not in {"rate", "irate", "increase"})]


def lint_job_instance(ds: Dashboards) -> list[str]:
    """dashboard-linter's target-job-rule; target-instance-rule only where instances differ."""
    bad = []
    for d, p, t in all_targets(ds):
        for s in selectors(t["expr"]):
            if ":" in s.name:  # recorded: aggregated by (kind, scope), no job label to match
                if "job" in s.matchers:
                    bad.append(f"{where(d, p, t)}: {s.name} has no job label")
            elif 'job=~"$job"' not in s.matchers:
                bad.append(f"{where(d, p, t)}: {s.name} without job=~\"$job\"")
            if (s.name in PER_REPLICA) != ('instance=~"$instance"' in s.matchers):
                bad.append(f"{where(d, p, t)}: {s.name} instance matcher (per replica: {s.name in PER_REPLICA})")
    for d in ds.values():
        for name, s in variable_selectors(d):
            if name != "job" and 'job=~"$job"' not in s.matchers:
                bad.append(f"{d['uid']}: ${name} lists values of every job")
    return bad


def lint_dedupe(ds: Dashboards) -> list[str]:
    """Each API replica serves the same KPI counters: `max by (scope)` first, then sums; no avg of ratios."""
    bad = []
    for d, p, t in all_targets(ds):
        if re.search(r"\bavg\b", t["expr"]):
            bad.append(f"{where(d, p, t)}: avg")
        for s in selectors(t["expr"]):
            if s.name.startswith("sqm_kpi_") and not re.search(r"max by \(scope\) \((rate|increase)\($", s.before):
                bad.append(f"{where(d, p, t)}: {s.name} not under max by (scope)")
    return bad


@pytest.mark.parametrize("lint", [lint_ranges, lint_counters, lint_job_instance, lint_dedupe])
def test_promql_lint(lint: Any) -> None:
    assert not lint(DASHBOARDS), lint(DASHBOARDS)


OFFERED = 'sum(max by (scope) (increase(sqm_kpi_calls_offered_total{job=~"$job", scope="all"}[$__range])))'


@pytest.mark.parametrize(("lint", "panel", "change", "expected"), [
    (lint_datasource, "Calls offered", {"datasource": {"type": "prometheus", "uid": "prometheus"}}, "Calls offered"),
    (lint_ranges, "Contact volume", {"expr": 'sum(rate(sqm_events_total{job=~"$job"}[5m]))'}, "[5m]"),
    (lint_ranges, "Contact volume", {"expr": OFFERED}, "$__range in a range query"),
    (lint_counters, "Calls offered", {"expr": 'sum(sqm_kpi_calls_offered_total{job=~"$job"})'},
     "sqm_kpi_calls_offered_total"),
    (lint_job_instance, "Calls offered", {"expr": OFFERED.replace('job=~"$job", ', "")}, "without job"),
    (lint_job_instance, "Contact volume", {"expr": 'kind_scope:sqm_kpi_calls_offered:rate5m{job=~"$job"}'},
     "has no job label"),
    (lint_dedupe, "Calls offered", {"expr": OFFERED.replace("max by (scope) ", "")}, "not under max by (scope)"),
    (lint_dedupe, "CSAT", {"expr": 'avg(sqm_csat_ratio{job=~"$job"})'}, "avg"),
])
def test_lint_catches_a_broken_dashboard(lint: Any, panel: str, change: dict[str, Any], expected: str) -> None:
    """Each rule reports a defect planted in a copy of the overview: the lint is not vacuous."""
    broken = copy.deepcopy(DASHBOARDS["sqm-overview"])
    (target,) = [p for p in broken["panels"] if p.get("title") == panel]
    (target if "datasource" in change else target["targets"][0]).update(change)
    found = lint({"sqm-overview": broken})
    assert any(expected in v for v in found), found


def known_metrics() -> set[str]:
    """Metric families of docs/metrics.md's generated table, plus the recording rules' records."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    table = text.split("<!-- BEGIN GENERATED: metrics -->")[1].split("<!-- END GENERATED: metrics -->")[0]
    names = set(re.findall(r"^\| `([a-z_:]+)` \|", table, re.M))
    if RECORDING_RULES.exists():
        rules = yaml.safe_load(RECORDING_RULES.read_text())
        names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names


def test_every_metric_exists() -> None:
    known = known_metrics()
    used = {s.name: where(d, p, t) for d, p, t in all_targets() for s in selectors(t["expr"])}
    used |= {s.name: f"{d['uid']} / ${n}" for d in DASHBOARDS.values() for n, s in variable_selectors(d)}
    missing = sorted(f"{n} ({w})" for n, w in used.items() if n not in known)
    hint = "" if RECORDING_RULES.exists() else f" ({RECORDING_RULES.relative_to(ROOT)} is missing)"
    assert not missing, f"not in docs/metrics.md nor the recording rules{hint}: {missing}"


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool parses every expression (variables as "All" selects them) as a recording rule."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make peers` installs Debian's prometheus package"
    exprs = [(where(d, p, t), substitute(t["expr"], variable_values(d))) for d, p, t in all_targets()]
    exprs += [(f"{d['uid']} / ${n}", substitute(f"{s.name}{{{s.matchers}}}", variable_values(d)))
              for d in DASHBOARDS.values() for n, s in variable_selectors(d)]
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"sqm_dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = tmp_path / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"{run.stdout}{run.stderr}\n" + "\n".join(f"{i}: {w}" for i, (w, _) in
                                                                         enumerate(exprs))
    assert f"SUCCESS: {len(exprs)} rules found" in run.stdout


# -- panels ---------------------------------------------------------------------------------------

def test_panels_have_titles_descriptions_and_units() -> None:
    bad = []
    for d, p in all_panels():
        if p["type"] == "row":
            continue
        if not p.get("title") or not p.get("description"):
            bad.append(f"{where(d, p)}: title and description")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if p["type"] in QUERY_PANELS and unit not in UNITS:
            bad.append(f"{where(d, p)}: unit {unit!r}")
        for o in p.get("fieldConfig", {}).get("overrides", []):
            bad += [f"{where(d, p)}: override unit {pr['value']!r}" for pr in o["properties"]
                    if pr["id"] == "unit" and pr["value"] not in UNITS]
        if p["type"] in QUERY_PANELS and not p.get("targets"):
            bad.append(f"{where(d, p)}: no query")
    assert not bad, bad


def test_panel_titles_are_unique_per_dashboard_and_targets_have_ref_ids() -> None:
    for d in DASHBOARDS.values():
        titles = [p["title"] for p in d["panels"] if p["type"] != "row"]
        assert len(titles) == len(set(titles)), (d["uid"], sorted(t for t in titles if titles.count(t) > 1))
    for d, p in all_panels():
        refs = [t["refId"] for t in p.get("targets", [])]
        assert all(refs) and len(refs) == len(set(refs)), where(d, p)


def test_range_stats_are_instant_queries() -> None:
    """A stat or table over `$__range` is one evaluation at the end of the range, not a series."""
    bad = [where(d, p, t) for d, p, t in all_targets() if p["type"] in {"table", "bargauge"} and not t.get("instant")]
    assert not bad, bad


def test_layout_fits_the_grid_without_overlaps() -> None:
    for d in DASHBOARDS.values():
        ids = [p["id"] for _, p in all_panels() if _ is d]
        assert len(ids) == len(set(ids)) and min(ids) >= 1, d["uid"]
        cells: dict[tuple[int, int], str] = {}
        for p in d["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] >= 1, where(d, p)
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{where(d, p)} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_shipped_targets_cover_every_query_and_substitute_leaves_no_variable() -> None:
    """The helper other tests use to evaluate every expression against a real Prometheus."""
    listed = [t for d in DASHBOARDS.values() for t in targets(d)]
    assert len(listed) == sum(1 for _ in all_targets()) > 100
    assert {t.uid for t in listed} == UIDS
    for t in listed:
        expr = substitute(t.expr, variable_values(DASHBOARDS[t.uid]))
        assert "$" not in expr, (t.uid, t.panel, expr)
    with pytest.raises(KeyError):
        substitute('x{team=~"$nosuchvariable"}', {})



def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a compose service's bind mounts (short or long syntax)."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            host, container = v.split(":")[:2]
        else:
            host, container = v["source"], v["target"]
        out[container] = host
    return out


def test_provisioning_matches_compose_and_prometheus() -> None:
    grafana = ROOT / "deploy" / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((grafana / "datasources" / "sqm.yaml").read_text())["datasources"]
    assert (ds["uid"], ds["type"], ds["url"], ds["isDefault"]) == ("prometheus", "prometheus",
                                                                   "http://prometheus:9090", True)
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert ds["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"], \
        "$__rate_interval is computed from the datasource's scrape interval: keep it Prometheus' own"
    (provider,) = yaml.safe_load((grafana / "dashboards" / "sqm.yaml").read_text())["providers"]
    assert (provider["type"], provider["folder"], provider["options"]["path"]) == (
        "file", "sqm", "/var/lib/grafana/dashboards/sqm")
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts.get("/var/lib/grafana/dashboards/sqm") == "./grafana/dashboards", mounts
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning", mounts
