"""Alerts: GET /v1/alerts, /v1/alerts/timing, /v1/alerts/{id}, POST /v1/alerts/{id}/ack (docs/api.md
"Alerts"). Handlers get AlertViews (api/alert_views.py), never ORM rows. Acknowledging needs the admin role.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from alerts.followup import Reading
from alerts.history import (
    AlertQuery,
    AlertRepository,
    Conflict,
    NotFound,
    readings_of,
)
from api.alert_rows import alert_view, event_view
from api.alert_views import AlertEventView, AlertView, live_reading
from api.deps import (
    AdminDep,
    HistoryDep,
    ReadAuthenticated,
    ViewDep,
)
from stream.clock import aware, rfc3339_opt, utc, utcnow
from stream.view import View

router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=[ReadAuthenticated])


class ReadingOut(BaseModel):
    after_s: int = Field(description="seconds after the acknowledgement (0: at it)")
    value: float | None
    count: int


class FollowUpOut(BaseModel):
    readings: list[ReadingOut] = Field(description="the rule's KPI at the acknowledgement, 15 and 30 minutes after")
    verdict: Literal["waiting", "recovered", "improved", "not improved"]


class AlertOut(BaseModel):
    id: str
    rule_id: str
    scope: str
    kpi: str
    window: str
    state: str
    severity: str | None
    value: float | None = Field(description="the KPI at the last transition (what made it fire or change)")
    count: int
    live_value: float | None = Field(description="pending or firing: the rule's KPI on the scope and window now "
                                     "(as GET /v1/kpis gives it)")
    live_count: int | None
    threshold: float | None
    op: str
    labels: dict[str, str]
    summary: str
    intervention: str
    texts: dict[str, dict[str, str]] = Field(description="summary and intervention in other languages")
    runbook_url: str | None
    pending_at: str | None
    firing_at: str | None
    resolved_at: str | None
    updated_at: str | None
    acked_by: str | None
    acked_at: str | None
    ack_note: str | None
    silenced_by: str | None
    escalation_level: int
    end_reason: str | None = Field(description="why it ended other than by its KPI (e.g. not held by the engine)")
    follow_up: FollowUpOut | None = Field(description="once acknowledged: did the intervention work")


class AlertEventOut(BaseModel):
    event_id: str
    kind: str
    state: str
    severity: str | None
    value: float | None
    count: int
    threshold: float | None
    ts: str | None
    detail: dict[str, Any]


class AlertDetail(AlertOut):
    history: list[AlertEventOut]


class AlertsOut(BaseModel):
    alerts: list[AlertOut]
    total: int = Field(description="alerts matching the filters (before limit)")


def _out(v: AlertView) -> AlertOut:
    follow = None
    if v.follow_up is not None:
        follow = FollowUpOut(readings=[ReadingOut(after_s=r.after_s, value=r.value, count=r.count)
                                       for r in v.follow_up.readings],
                             verdict=v.follow_up.verdict)
    return AlertOut(id=v.id, rule_id=v.rule_id, scope=v.scope, kpi=v.kpi, window=v.window, state=v.state,
                    severity=v.severity, value=v.value, count=v.count, live_value=v.live_value,
                    live_count=v.live_count, threshold=v.threshold, op=v.op, labels=v.labels, summary=v.summary,
                    intervention=v.intervention, texts=v.texts, runbook_url=v.runbook_url,
                    pending_at=rfc3339_opt(v.pending_at), firing_at=rfc3339_opt(v.firing_at),
                    resolved_at=rfc3339_opt(v.resolved_at), updated_at=rfc3339_opt(v.updated_at),
                    acked_by=v.acked_by, acked_at=rfc3339_opt(v.acked_at), ack_note=v.ack_note,
                    silenced_by=v.silenced_by, escalation_level=v.escalation_level, end_reason=v.end_reason,
                    follow_up=follow)


def _event_out(e: AlertEventView) -> AlertEventOut:
    return AlertEventOut(event_id=e.event_id, kind=e.kind, state=e.state, severity=e.severity, value=e.value,
                         count=e.count, threshold=e.threshold, ts=rfc3339_opt(e.ts), detail=e.detail)


@router.get("/alerts", response_model=AlertsOut)
def list_alerts(
    history: HistoryDep,
    view: ViewDep,
    state: Annotated[list[Literal["pending", "firing", "resolved", "inactive"]] | None, Query()] = None,
    severity: Annotated[list[Literal["warning", "critical"]] | None, Query()] = None,
    scope: Annotated[str | None, Query(description="a scope, or a glob such as team:* ")] = None,
    rule: str | None = None,
    since: Annotated[datetime | None, Query(description="updated at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="updated before (RFC 3339)")] = None,
    acked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertsOut:
    """Alerts, newest change first. Without `state`: pending and firing ones plus the resolved ones.
    Pending and firing alerts carry their live value (the rule's KPI now)."""
    rows, total = history.alerts(AlertQuery(state=list(state) if state else None,
                                            severity=list(severity) if severity else None, scope=scope,
                                            rule=rule, since=since, until=until, acked=acked, limit=limit))
    readings = history.readings([a.id for a in rows if a.acked_at is not None])
    now = time.time()
    return AlertsOut(alerts=[_out(alert_view(a, view, now=now, readings=readings.get(a.id, []))) for a in rows],
                     total=total)


class TimingOut(BaseModel):
    rule_id: str
    measure: Literal["ack", "resolve"] = Field(description="ack: firing (or pending) to acknowledged; "
                                               "resolve: firing to resolved")
    count: int
    mean_s: float
    median_s: float
    p90_s: float


@router.get("/alerts/timing", response_model=list[TimingOut])
def alert_timing(history: HistoryDep,
                 since: Annotated[datetime | None, Query(description="alerts changed since (default: 7 days)")] = None,
                 ) -> list[TimingOut]:
    """Time to acknowledge and time to resolve per rule, over the alerts changed since `since` (the
    same figures as a histogram since the start: `sqm_alert_ack_seconds`, `sqm_alert_resolve_seconds`)."""
    start = aware(since) if since else utcnow() - timedelta(days=7)
    return [TimingOut(rule_id=rule, measure=measure, count=len(v), mean_s=statistics.fmean(v),
                      median_s=statistics.median(v), p90_s=v[min(len(v) - 1, math.ceil(0.9 * len(v)) - 1)])
            for rule, measure, v in history.timings(start)]


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses={404: {}})
def get_alert(alert_id: str, history: HistoryDep, view: ViewDep) -> AlertDetail:
    """One alert with its history (every transition, acknowledgement, check and escalation)."""
    try:
        a, events = history.alert(alert_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    out = _out(alert_view(a, view, now=time.time(), readings=readings_of(events)))
    return AlertDetail(**out.model_dump(), history=[_event_out(event_view(e)) for e in events])


class AckIn(BaseModel):
    note: str = Field("", max_length=2000, description="optional: what is being done")


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut,
             responses={404: {}, 409: {"description": "not pending or firing, or acknowledged already"}})
async def ack_alert(alert_id: str, history: HistoryDep, view: ViewDep, who: AdminDep,
                    body: Annotated[AckIn | None, Body()] = None) -> AlertOut:
    """Acknowledge: stops the escalation of this alert (repeats go on while it fires). No body is
    needed: who acknowledged is the key's name (`token` for SQM_ADMIN_TOKEN); `note` is optional.
    The rule's KPI is recorded now and 15 and 30 minutes later (`follow_up`)."""
    return _out(await acknowledge(history, view, alert_id, who=who.name, note=body.note if body else ""))


async def acknowledge(history: AlertRepository, view: View, alert_id: str, *, who: str, note: str) -> AlertView:
    """Acknowledge with the rule's KPI now as the first reading (used by the board too)."""
    try:
        a = await asyncio.to_thread(history.alert_row, alert_id)
        now = time.time()
        reading = live_reading(view, a.kpi, a.scope, a.window, now=now)
        acked = await asyncio.to_thread(history.acknowledge, alert_id, by=who, note=note, now=utc(now),
                                        reading=reading)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    return alert_view(acked, view, now=now, readings=[Reading(0, reading[0], reading[1])])
