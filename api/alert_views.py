"""Alerts as the API and the board show them: the stored alert, its live value from the view and
the follow-up of its acknowledgement. Plain data, so routers and templates never hold ORM rows (the
rows become AlertViews in api/alert_rows.py). Pure.

A pending or firing alert's `live_value` / `live_count` is the rule's KPI on the alert's scope and
the rule's window now, read from the same view as `/v1/kpis` (so the two never disagree); the
stored `value` / `count` are those of its last transition (what made it fire or change).

    av = alert_view(row, view, now=time.time(), readings=history_readings.get(row.id, []))  # alert_rows
    av.live_value, av.follow_up.verdict, av.text("zh-CN", "summary")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from alerts.followup import Reading
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, TOPIC_KPIS
from stream.view import View

ACTIVE = ("pending", "firing")


@dataclass(frozen=True)
class FollowUp:
    readings: tuple[Reading, ...]  # at the acknowledgement (after_s 0), then 15 and 30 minutes after
    verdict: str  # waiting, recovered, improved, not improved


@dataclass(frozen=True)
class AlertView:
    id: str
    rule_id: str
    scope: str
    kpi: str
    window: str
    state: str
    severity: str | None
    value: float | None
    count: int
    threshold: float | None
    op: str
    labels: dict[str, str]
    summary: str
    intervention: str
    texts: dict[str, dict[str, str]]
    runbook_url: str | None
    pending_at: datetime | None
    firing_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    ack_note: str | None
    silenced_by: str | None
    escalation_level: int
    end_reason: str | None
    live_value: float | None = None
    live_count: int | None = None
    follow_up: FollowUp | None = None

    def text(self, lang: str, which: str) -> str:
        """`summary` or `intervention` in `lang`, else the rule's own."""
        t = self.texts.get(lang) or {}
        return t.get(which) or (self.summary if which == "summary" else self.intervention)


def live_reading(view: View, kpi: str, scope: str, window: str, *, now: float) -> tuple[float | None, int]:
    """The rule's KPI on the scope and window now, as /v1/kpis gives it."""
    if kpi not in KPI_BY_NAME and kpi not in LIVE_BY_NAME and kpi not in TOPIC_KPIS:
        return None, 0
    value, count = view.kpi(scope, kpi, window, now=now)
    return value, count


@dataclass(frozen=True)
class AlertEventView:
    """One entry of an alert's history (a transition, an acknowledgement, a notification's fate)."""

    event_id: str
    kind: str
    state: str | None
    severity: str | None
    value: float | None
    count: int | None
    threshold: float | None
    ts: datetime | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class NotificationView:
    """One notification of the delivery outbox."""

    id: int
    alert_id: str
    target: str
    reason: str
    status: Literal["pending", "parked", "delivered"]
    attempts: int
    last_error: str | None
    created_at: datetime | None
    next_at: datetime | None
    delivered_at: datetime | None
    parked_at: datetime | None
    retried_at: datetime | None
    alert: dict[str, Any]  # the alert as the notification carries it
