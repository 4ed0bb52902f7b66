"""Notification targets, routes, escalation and silence matching (docs/api.md "Delivery"). Pure.

A notify file (SQM_NOTIFY_FILE) names the targets and routes alerts to them, Alertmanager-style:

    targets:
      - {name: oncall-hook, type: webhook, url: "https://hooks.example/sqm"}
      - {name: am, type: alertmanager, url: "http://alertmanager:9093"}
      - {name: chat, type: slack, url: "https://hooks.slack.com/services/T/B/X"}
      - {name: leads-mail, type: email, smtp_host: mail, smtp_port: 25, from: sqm@example.com,
         to: [leads@example.com]}
      - {name: file, type: log, path: var/alerts.log}
      - {name: cn-leads, type: slack, url: "https://chat.example/hooks/x", language: zh-CN}  # Chinese texts
    routes:                       # first match wins, unless `continue: true`
      - match: {severity: critical, scope: "team:*"}
        targets: [oncall-hook, am]
        repeat_interval: 30m      # re-notify a still-firing alert this often
        escalation:               # critical and not acknowledged after `after`: next level
          - {after: 10m, targets: [leads-mail]}
          - {after: 30m, targets: [chat]}
      - match: {audience: team-lead}   # any label, severity, scope (glob), rule, kpi
        targets: [chat]
      - targets: [file]           # no match: everything

Without a notify file, every alert goes to a log target (var/alerts.log, one JSON line each).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.rules import Duration
from stream.labels import lang_of

TargetType = Literal["webhook", "alertmanager", "slack", "email", "log"]
DEFAULT_REPEAT_S = 4 * 3600.0
ALERTMANAGER_RESEND_S = 60.0  # Alertmanager resolves an alert not re-sent before endsAt


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    type: TargetType
    url: str | None = None
    headers: dict[str, str] = {}
    path: str | None = None  # log
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    from_addr: str | None = Field(None, alias="from")
    to: list[str] = []
    resend_s: Duration | None = Field(None, description="Alertmanager: re-send firing alerts this often")
    language: str | None = Field(None, description="the language of summaries and interventions sent here (en, "
                                 "zh-CN); default: each rule's own texts")

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is None:
            return None
        lang = lang_of(v)
        if lang is None:
            raise ValueError(f"language {v!r} is not supported (en, zh-CN)")
        return lang

    @model_validator(mode="after")
    def _complete(self) -> Target:
        if self.type in ("webhook", "alertmanager", "slack") and not self.url:
            raise ValueError(f"target {self.name}: type {self.type} needs a url")
        if self.type == "email" and not (self.smtp_host and self.from_addr and self.to):
            raise ValueError(f"target {self.name}: type email needs smtp_host, from and to")
        if self.type == "log" and not self.path:
            raise ValueError(f"target {self.name}: type log needs a path")
        return self

    @property
    def repeat_cap_s(self) -> float | None:
        """Alertmanager forgets an alert that is not re-sent: cap the repeat interval for it."""
        if self.type == "alertmanager":
            return self.resend_s or ALERTMANAGER_RESEND_S
        return None


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: Duration = Field(alias="after")
    targets: list[str]


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    targets: list[str] = []
    repeat_interval_s: Duration = Field(DEFAULT_REPEAT_S, alias="repeat_interval")
    escalation: list[Level] = []
    cont: bool = Field(False, alias="continue")

    @field_validator("match_re")
    @classmethod
    def _re(cls, v: dict[str, str]) -> dict[str, str]:
        for k, pat in v.items():
            try:
                re.compile(pat)
            except re.error as exc:
                raise ValueError(f"match_re.{k}: {exc}") from exc
        return v

    def matches(self, labels: dict[str, str]) -> bool:
        for k, want in self.match.items():
            if not fnmatch.fnmatchcase(labels.get(k, ""), want):
                return False
        return all(re.fullmatch(pat, labels.get(k, "")) for k, pat in self.match_re.items())


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: list[Target] = []
    routes: list[Route] = []

    @model_validator(mode="after")
    def _known(self) -> NotifyConfig:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        for i, r in enumerate(self.routes):
            for n in [*r.targets, *(t for lv in r.escalation for t in lv.targets)]:
                if n not in names:
                    raise ValueError(f"routes[{i}]: unknown target {n!r}")
        return self

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)

    def routes_for(self, labels: dict[str, str]) -> list[Route]:
        out = []
        for r in self.routes:
            if r.matches(labels):
                out.append(r)
                if not r.cont:
                    break
        return out


def default_config(log_path: str) -> NotifyConfig:
    return NotifyConfig(targets=[Target(name="log", type="log", path=log_path)], routes=[Route(targets=["log"])])


def load_notify_file(path: str | None, default_log: str) -> NotifyConfig:
    if not path:
        return default_config(default_log)
    return NotifyConfig.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def alert_labels(alert: dict[str, Any]) -> dict[str, str]:
    """The labels an alert is routed and silenced by: the rule's labels plus the engine's."""
    out = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    out.update({"alertname": str(alert["rule_id"]), "rule": str(alert["rule_id"]), "severity": str(
        alert.get("severity") or ""), "scope": str(alert["scope"]), "kpi": str(alert["kpi"]),
        "window": str(alert["window"])})
    return out


# -- silences -------------------------------------------------------------------------------
class Matcher(BaseModel):
    """Alertmanager's matcher: `op` is =, !=, =~ (full-match regex) or !~."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    value: str
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}: bad regular expression: {exc}") from exc
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = re.fullmatch(self.value, v) is not None
        return hit if self.op == "=~" else not hit


def silenced_by(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return bool(matchers) and all(m.matches(labels) for m in matchers)
