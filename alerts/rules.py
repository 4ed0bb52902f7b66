"""Alert rules (docs/api.md "Rules"): the model, its validation and the YAML file. Pure apart from reading it.

    rules:
      - id: agent-fcr-low
        kpi: fcr_rate
        scope: "agent:*"          # every agent; or one scope such as "team:billing", or "all"
        window: 24h
        op: "<"
        warning: 0.70
        critical: 0.55
        clear_margin: 0.03        # hysteresis: resolve only at >= 0.73
        for: 5m
        min_count: 20             # no alert on a ratio computed from 3 contacts
        labels: {team_lead: "yes"}
        summary: "FCR of {scope} is {value:.0%} over {window}"
        intervention: "Assign a mentor and review the agent's last 20 contacts."
        texts:                    # the same texts in other languages (the board's and a target's)
          zh-CN: {summary: "{scope} 的首次解决率为 {value:.0%}（{window}）", intervention: "安排导师……"}

A rule file is validated rule by rule: a bad rule is reported (`RuleError` with the rule's position
and the field) and skipped, the good ones load. Over the API a bad rule is refused with the same text.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.templates import check as check_template
from stream.events import is_clean_name, is_clean_text
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, LIVE_KPIS, TOPIC_KPIS
from stream.labels import lang_of
from stream.scopes import is_scope_selector, kind_of
from stream.windows import WINDOWS

Op = Literal["<", "<=", ">", ">="]
Severity = Literal["warning", "critical"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"alertname", "severity", "scope", "rule", "kpi", "window"})


def parse_duration(v: Any) -> float:
    """'90s', '5m', '1.5h', '2d', or a number of seconds."""
    if isinstance(v, bool):
        raise ValueError("a duration is a number of seconds or a string such as '5m'")
    if isinstance(v, int | float):
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return float(v)
    m = _DURATION.match(str(v))
    if not m:
        raise ValueError(f"not a duration: {v!r} (use seconds or e.g. '30s', '5m', '1h', '1d')")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]  # seconds, or "30s", "5m", "1h"


def breaches(value: float, op: Op, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    return value >= threshold


def _check_summary(v: str) -> str:
    if not is_clean_name(v):
        raise ValueError("must be one line without control characters, U+2028/U+2029 or bidi controls")
    return v


def _check_text(v: str) -> str:
    if not is_clean_text(v):
        raise ValueError("must not contain control characters other than tab and line breaks")
    return v


def _check_template(v: str) -> str:
    """A summary or an intervention: only the documented fields, bounded formats (alerts/templates.py)."""
    check_template(v)
    return v


class RuleTexts(BaseModel):
    """A rule's texts in one more language; a text left empty falls back to the rule's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: str = ""
    intervention: str = ""

    @field_validator("summary")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return _check_summary(v)

    @field_validator("intervention")
    @classmethod
    def _text(cls, v: str) -> str:
        return _check_text(v)

    @field_validator("summary", "intervention")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v)


class Rule(BaseModel):
    """One alert rule. `for` is spelled `for` in YAML and JSON (`for_s` in Python, seconds)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    id: str = Field(description="unique, [A-Za-z0-9_.-], at most 100 characters")
    kpi: str
    scope: str = Field("all", description="one scope (team:billing), every scope of a kind (team:*), or all")
    window: str = Field("1h", description="5m, 15m, 1h or 24h; ignored for the live-state KPIs")
    op: Op
    warning: float | None = Field(None, allow_inf_nan=False)
    critical: float | None = Field(None, allow_inf_nan=False)
    for_s: Duration = Field(0.0, alias="for", description="how long the condition must hold before firing")
    clear: float | None = Field(None, allow_inf_nan=False,
                                description="absolute level at which a firing warning resolves")
    clear_margin: float = Field(0.0, ge=0, allow_inf_nan=False,
                                description="hysteresis: resolve / downgrade only this far past the threshold")
    min_count: int = Field(0, ge=0, description="minimum denominator (samples) for the KPI to be judged")
    labels: dict[str, str] = {}
    summary: str = ""
    intervention: str = Field("", description="what the lead should do")
    texts: dict[str, RuleTexts] = Field({}, description="summary and intervention in other languages, by "
                                         "language (en, zh-CN)")
    runbook_url: str | None = None
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '_', '.', '-', starting with a "
                             "letter or digit")
        return v

    @field_validator("kpi")
    @classmethod
    def _kpi(cls, v: str) -> str:
        if v not in KPI_BY_NAME and v not in LIVE_KPIS and v not in TOPIC_KPIS:
            known = ", ".join(sorted([*KPI_BY_NAME, *LIVE_KPIS, *TOPIC_KPIS]))
            raise ValueError(f"unknown KPI {v!r}; known: {known}")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if is_scope_selector(v):
            return v
        raise ValueError(f"not a scope selector: {v!r} (all, team:billing, team:*, agent:*, channel:*, tier:*, "
                         "queue:*)")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if v not in WINDOWS:
            raise ValueError(f"unknown window {v!r}; one of {', '.join(WINDOWS)}")
        return v

    @field_validator("summary", "runbook_url")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        return v if v is None else _check_summary(v)

    @field_validator("intervention")
    @classmethod
    def _text(cls, v: str) -> str:
        return _check_text(v)

    @field_validator("summary", "intervention")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v)

    @field_validator("texts")
    @classmethod
    def _languages(cls, v: dict[str, RuleTexts]) -> dict[str, RuleTexts]:
        out: dict[str, RuleTexts] = {}
        for tag, texts in v.items():
            lang = lang_of(tag)
            if lang is None:
                raise ValueError(f"language {tag!r} is not supported (en, zh-CN)")
            out[lang] = texts
        return out

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k, value in v.items():
            if not is_clean_name(value):
                raise ValueError(f"label {k!r}: the value must be one line without control characters")
            if not _LABEL.match(k):
                raise ValueError(f"label name {k!r} is not [a-zA-Z_][a-zA-Z0-9_]*")
            if k in RESERVED_LABELS:
                raise ValueError(f"label {k!r} is set by the engine; choose another name")
        return v

    @model_validator(mode="after")
    def _live_scope(self) -> Rule:
        live = LIVE_BY_NAME.get(self.kpi)
        kind = kind_of(self.scope)
        if live is not None and kind not in live.kinds:
            raise ValueError(f"{self.kpi} is not kept for {kind} scopes (only {', '.join(sorted(live.kinds))})")
        return self

    @model_validator(mode="after")
    def _thresholds(self) -> Rule:
        w, c = self.warning, self.critical
        if w is None and c is None:
            raise ValueError("a rule needs a warning or a critical threshold (or both)")
        if w is not None and c is not None and breaches(w, self.op, c) and w != c:
            # critical must be the more severe level: for '<' it is lower than warning
            raise ValueError(f"critical ({c}) must be beyond warning ({w}) in the direction of '{self.op}'")
        if self.clear is not None:
            lowest = w if w is not None else c
            assert lowest is not None
            if breaches(self.clear, self.op, lowest):
                raise ValueError(f"clear ({self.clear}) must be on the healthy side of the first threshold "
                                 f"({lowest}) for '{self.op}'")
        return self

    # -- evaluation helpers (pure) -------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.kpi in LIVE_KPIS

    @property
    def window_label(self) -> str:
        return "live" if self.live else self.window

    def matches(self, scope: str) -> bool:
        return fnmatch.fnmatchcase(scope, self.scope) if self.scope.endswith(":*") else scope == self.scope

    def level(self, value: float) -> Severity | None:
        """The most severe level whose threshold the value breaches (no hysteresis)."""
        if self.critical is not None and breaches(value, self.op, self.critical):
            return "critical"
        if self.warning is not None and breaches(value, self.op, self.warning):
            return "warning"
        return None

    def _clear_level(self, threshold: float, *, first: bool) -> float:
        if first and self.clear is not None:
            return self.clear
        return threshold + self.clear_margin if self.op in ("<", "<=") else threshold - self.clear_margin

    def holds(self, value: float, severity: Severity) -> bool:
        """Whether a firing alert at `severity` keeps that severity (hysteresis applied)."""
        t = self.critical if severity == "critical" else self.warning
        if t is None:
            return False
        first = severity == "warning" or self.warning is None
        clear = self._clear_level(t, first=first)
        return self.op in ("<", "<=") and value < clear or self.op in (">", ">=") and value > clear or \
            breaches(value, self.op, t)

    def threshold(self, severity: Severity) -> float | None:
        return self.critical if severity == "critical" else self.warning

    def to_doc(self) -> dict[str, Any]:
        """The rule as written in YAML / JSON (with `for`)."""
        return self.model_dump(by_alias=True, exclude_defaults=False, mode="json")


class RuleError(BaseModel):
    """One refused rule: where (file and position, or the id) and what is wrong."""

    where: str
    rule_id: str | None = None
    errors: list[str]

    def __str__(self) -> str:
        return f"{self.where}: " + "; ".join(self.errors)


def explain(exc: ValidationError) -> list[str]:
    """pydantic errors as 'field: message' lines a person can act on."""
    out = []
    for e in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "rule"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def parse_rule(doc: Any, where: str) -> Rule | RuleError:
    rid = doc.get("id") if isinstance(doc, dict) else None
    if not isinstance(doc, dict):
        return RuleError(where=where, errors=["a rule is a mapping of fields"])
    try:
        return Rule.model_validate(doc)
    except ValidationError as exc:
        return RuleError(where=where, rule_id=rid if isinstance(rid, str) else None, errors=explain(exc))


def parse_rules(data: Any, source: str) -> tuple[list[Rule], list[RuleError]]:
    """Every good rule of a rules document, and one error per bad rule. Never raises on a bad rule."""
    if data is None:
        return [], []
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        return [], [RuleError(where=source, errors=["the file must be a mapping with a 'rules' list"])]
    good: list[Rule] = []
    bad: list[RuleError] = []
    seen: set[str] = set()
    for i, doc in enumerate(data.get("rules") or []):
        rid = doc.get("id") if isinstance(doc, dict) else None
        r = parse_rule(doc, f"{source}: rules[{i}]" + (f" ({rid})" if rid else ""))
        if isinstance(r, Rule) and r.id in seen:
            r = RuleError(where=f"{source}: rules[{i}] ({r.id})", rule_id=r.id, errors=[f"id: duplicate id {r.id!r}"])
        if isinstance(r, Rule):
            seen.add(r.id)
            good.append(r)
        else:
            bad.append(r)
    return good, bad


def load_rule_file(path: str | Path) -> tuple[list[Rule], list[RuleError]]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [], [RuleError(where=str(p), errors=[f"cannot read the rule file: {exc}"])]
    return parse_rules(data, str(p))


DEFAULT_RULE_FILE = Path(__file__).with_name("default_rules.yaml")
