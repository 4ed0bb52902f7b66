"""Alert, alert-event and outbox rows (db.schema) as the views routers and templates get
(api/alert_views.py): the one place an ORM row of the alerting side turns into plain data."""

from __future__ import annotations

from collections.abc import Sequence

from alerts.followup import Reading, verdict
from alerts.history import labels_of, status_of
from api.alert_views import ACTIVE, AlertEventView, AlertView, FollowUp, NotificationView, live_reading
from db.schema import AlertEventRow, AlertRow, OutboxRow
from stream.view import View


def alert_view(a: AlertRow, view: View | None, *, now: float, readings: Sequence[Reading] = ()) -> AlertView:
    live: tuple[float | None, int | None] = (None, None)
    if a.state in ACTIVE and view is not None:
        live = live_reading(view, a.kpi, a.scope, a.window, now=now)
    follow = None
    if a.acked_at is not None:
        follow = FollowUp(tuple(sorted(readings, key=lambda r: r.after_s)),
                          verdict(a.op, readings, resolved=a.state == "resolved"))
    return AlertView(
        id=a.id, rule_id=a.rule_id, scope=a.scope, kpi=a.kpi, window=a.window, state=a.state, severity=a.severity,
        value=a.value, count=a.count, threshold=a.threshold, op=a.op, labels=labels_of(a), summary=a.summary,
        intervention=a.intervention, texts=dict(a.texts or {}), runbook_url=a.runbook_url, pending_at=a.pending_at,
        firing_at=a.firing_at, resolved_at=a.resolved_at, updated_at=a.updated_at, acked_by=a.acked_by,
        acked_at=a.acked_at, ack_note=a.ack_note, silenced_by=a.silenced_by, escalation_level=a.escalation_level,
        end_reason=a.end_reason, live_value=live[0], live_count=live[1], follow_up=follow)


def event_view(e: AlertEventRow) -> AlertEventView:
    return AlertEventView(e.event_id, e.kind, e.state, e.severity, e.value, e.count, e.threshold, e.ts, e.detail)


def notification_view(r: OutboxRow) -> NotificationView:
    return NotificationView(r.id, r.alert_id, r.target, r.reason, status_of(r), r.attempts, r.last_error,
                            r.created_at, r.next_at, r.delivered_at, r.parked_at, r.retried_at, dict(r.payload or {}))
