"""Alert data the notifier and delivery tests share: a rule's transitions, the outbox, an alert payload."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.engine import AlertState, step
from alerts.rules import Rule
from db.schema import OutboxRow

SL_RULE = Rule.model_validate({"id": "sl", "kpi": "service_level", "scope": "team:*", "op": "<", "warning": 0.8,
                               "critical": 0.5, "labels": {"audience": "on-call"}})


def transitions(readings: list[tuple[float, float]], scope: str = "team:a",
                rule: Rule = SL_RULE) -> list[dict[str, Any]]:
    """The transitions `rule` makes on (ts, value) readings of `scope` (100 samples each), as JSON."""
    st, out = AlertState(), []
    for ts, v in readings:
        st, ts_ = step(rule, st, v, 100, ts, scope)
        out += [t.to_json() for t in ts_]
    return out


def outbox(engine: Engine) -> list[OutboxRow]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def alert(**over: Any) -> dict[str, Any]:
    """An alert as a notification carries it (critical SL of team:billing), with `over` changed."""
    a = {"alert_id": "a1b2c3", "rule_id": "sl-low", "scope": "team:billing", "kpi": "service_level", "window": "15m",
         "op": "<", "state": "firing", "severity": "critical", "value": 0.42, "count": 50, "threshold": 0.5,
         "labels": {"audience": "on-call"}, "summary": "SL is 42%", "intervention": "Open the overflow queue.",
         "runbook_url": None, "started_at": 1_800_000_000.0, "ts": 1_800_000_000.0, "acked_by": None,
         "escalation_level": 0}
    return {**a, **over}
