"""Reading the shipped dashboard JSON: every PromQL expression with where it sits, and variable substitution.

For tests that check the expressions against something real (a Prometheus with sqm's recording
rules, promtool), e.g.:

    for t in shipped_targets():
        expr = substitute(t.expr, variable_values(load()[t.uid]) | {"team": "billing"})
        ...  # GET /api/v1/query?query=expr

Pure: reads files, imports nothing of Grafana's SDK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "dashboards"
_VAR = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")


class Target(NamedTuple):
    uid: str  # dashboard uid
    dashboard: str  # dashboard title
    panel: str  # panel title
    panel_type: str  # stat, timeseries, table, bargauge, state-timeline...
    ref_id: str
    expr: str
    instant: bool  # evaluated once at the end of the range (stat, table, bar gauge)


def load(directory: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON of every sqm-*.json in `directory`."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("sqm-*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        out[d["uid"]] = d
    return out


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (rows themselves too)."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def targets(dashboard: Mapping[str, Any]) -> Iterator[Target]:
    """Every query of every panel of one dashboard."""
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield Target(dashboard["uid"], dashboard["title"], p.get("title", ""), p["type"], t.get("refId", ""),
                         t.get("expr", ""), bool(t.get("instant")))


def shipped_targets(directory: Path = DASHBOARDS_DIR) -> Iterator[Target]:
    """Every (dashboard, panel, expression) of the shipped dashboards."""
    for d in load(directory).values():
        yield from targets(d)


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Name -> value of each query variable as "All" selects it (its allValue, `.+`)."""
    return {v["name"]: v.get("allValue") or ".+" for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") == "query"}


def substitute(expr: str, values: Mapping[str, str], *, rate_interval: str = "1m", range_: str = "1h",
               interval: str = "15s") -> str:
    """`expr` with Grafana's variables replaced as Grafana would before sending it to Prometheus.

    `$__rate_interval`, `$__range` and `$__interval` take the given durations; a variable
    missing from `values` raises KeyError, so that no `$name` ever reaches Prometheus.
    """
    builtins = {"__rate_interval": rate_interval, "__range": range_, "__interval": interval}

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return builtins[name] if name in builtins else values[name]

    return _VAR.sub(one, expr)


# -- a small PromQL scanner: enough to find the selectors, their matchers and ranges --------------

class Selector(NamedTuple):
    name: str  # metric name
    matchers: str  # the text between { }
    range: str | None  # the text between [ ] of a range vector
    func: str | None  # the function the selector is the direct argument of
    before: str  # the expression text before the selector


_AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile", "limitk", "limit_ratio"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"}
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")


def _string_end(expr: str, i: int) -> int:
    """Index just past the quoted string that starts at expr[i]."""
    j = i + 1
    while expr[j] != expr[i]:
        j += 2 if expr[j] == "\\" else 1
    return j + 1


def _close(expr: str, i: int, opening: str, closing: str) -> int:
    """Index just past the bracket that closes expr[i] (== opening), skipping quoted strings."""
    depth = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _string_end(expr, i)
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {opening}{closing} in {expr!r}")


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression (not a full parser: no subqueries, no @).

    >>> [(s.name, s.range, s.func) for s in selectors('sum by (scope) (rate(a_total{x="}"}[5m])) / b')]
    [('a_total', '5m', 'rate'), ('b', None, None)]
    """
    out: list[Selector] = []
    i = 0
    while i < len(expr):
        if expr[i] in "\"'`":  # a string argument (label_replace...): not a metric
            i = _string_end(expr, i)
            continue
        m = _IDENT.match(expr, i)
        if m is None or (i > 0 and (expr[i - 1].isalnum() or expr[i - 1] in "._")):
            i += 1
            continue
        name, i = m.group(0), m.end()
        rest = expr[i:].lstrip()
        if name in _LABEL_LISTS:
            if rest.startswith("("):
                i = _close(expr, len(expr) - len(rest), "(", ")")
            continue
        if name in _AGGREGATORS or name in _KEYWORDS or rest.startswith("("):
            continue  # a function or an operator, not a metric
        start, matchers, rng = m.start(), "", None
        if expr.startswith("{", i):
            end = _close(expr, i, "{", "}")
            matchers, i = expr[i + 1:end - 1], end
        if expr.startswith("[", i):
            end = expr.index("]", i)
            rng, i = expr[i + 1:end], end + 1
        fn = re.search(r"(\w+)\s*\(\s*$", expr[:start])
        out.append(Selector(name, matchers, rng, fn.group(1) if fn else None, expr[:start]))
    return out
