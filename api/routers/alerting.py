"""Rules, alerts, acknowledgements, silences and notifications (docs/api.md). Reads and writes go to
the database; rule changes are also published to the rules topic, which the workers follow.

Writes need the admin bearer token (SQM_ADMIN_TOKEN).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from alerts.feed import publish_rule
from alerts.followup import Reading
from alerts.history import (
    AlertHistory,
    AlertQuery,
    Conflict,
    NotFound,
    NotificationQuery,
    SilenceView,
    readings_of,
    status_of,
)
from alerts.routing import Matcher
from alerts.rulebook import Rulebook, RuleRefused
from api.alert_rows import alert_view
from api.alert_views import AlertView, live_reading
from api.deps import (
    AdminAuthenticated,
    AdminDep,
    HistoryDep,
    ProducerDep,
    ReadAuthenticated,
    RulebookDep,
    SettingsDep,
    ViewDep,
)
from db.schema import AlertEventRow, OutboxRow
from services.config import Settings
from stream.clock import aware, rfc3339_opt, utc, utcnow
from stream.view import View

router = APIRouter(prefix="/v1", tags=["alerts"], dependencies=[ReadAuthenticated])


def _refused(exc: RuleRefused) -> JSONResponse:
    return JSONResponse({"detail": exc.errors}, status_code=exc.status)


# -- rules ---------------------------------------------------------------------------------------
class RuleOut(BaseModel):
    source: Literal["file", "api"] = Field(description="file rules are read-only over the API")
    rule: dict[str, Any]


class RulesOut(BaseModel):
    rules: list[RuleOut]
    errors: list[dict[str, Any]] = Field(description="rules refused (file or database), with where and what")


RuleBody = Annotated[dict[str, Any], Body(examples=[{
    "id": "billing-sl", "kpi": "service_level", "scope": "team:billing", "window": "15m", "op": "<",
    "warning": 0.8, "critical": 0.6, "for": "1m", "clear_margin": 0.05, "min_count": 20,
    "labels": {"audience": "on-call"}, "intervention": "Open the overflow queue."}])]


@router.get("/rules", response_model=RulesOut)
def list_rules(book: RulebookDep) -> RulesOut:
    rules, errors = book.snapshot()
    return RulesOut(rules=[RuleOut(source=s, rule=r.to_doc()) for r, s in rules],
                    errors=[e.model_dump() for e in errors])


@router.get("/rules/{rule_id}", response_model=RuleOut, responses={404: {}})
def get_rule(rule_id: str, book: RulebookDep) -> RuleOut:
    found = book.get(rule_id)
    if found is None:
        raise HTTPException(404, f"no rule {rule_id!r}")
    return RuleOut(source=found[1], rule=found[0].to_doc())


async def _publish(book: Rulebook, producer: Any, settings: Settings, rule_id: str) -> None:
    """Publish the rule as it now stands (None: deleted) to the rules topic the workers follow."""
    found = await asyncio.to_thread(book.get, rule_id)
    await publish_rule(producer, settings.rules_topic, rule_id, found[0] if found else None)


@router.post("/rules", status_code=201, response_model=RuleOut, dependencies=[AdminAuthenticated],
             responses={409: {}, 422: {"description": "what is wrong, field by field"}})
async def create_rule(doc: RuleBody, book: RulebookDep, producer: ProducerDep, settings: SettingsDep,
                      by: str | None = None) -> Any:
    try:
        rule = await asyncio.to_thread(book.create, doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.put("/rules/{rule_id}", response_model=RuleOut, dependencies=[AdminAuthenticated],
            responses={404: {}, 409: {}, 422: {}})
async def replace_rule(rule_id: str, doc: RuleBody, book: RulebookDep, producer: ProducerDep,
                       settings: SettingsDep, by: str | None = None) -> Any:
    try:
        rule = await asyncio.to_thread(book.replace, rule_id, doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.delete("/rules/{rule_id}", status_code=204, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {}}, response_class=Response)
async def delete_rule(rule_id: str, book: RulebookDep, producer: ProducerDep, settings: SettingsDep) -> Response:
    try:
        await asyncio.to_thread(book.delete, rule_id)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule_id)
    return Response(status_code=204)


# -- alerts --------------------------------------------------------------------------------------
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


def _event_out(e: AlertEventRow) -> AlertEventOut:
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
    return AlertDetail(**out.model_dump(), history=[_event_out(e) for e in events])


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


async def acknowledge(history: AlertHistory, view: View, alert_id: str, *, who: str, note: str) -> AlertView:
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


# -- silences ------------------------------------------------------------------------------------
class SilenceIn(BaseModel):
    matchers: list[Matcher] = Field(min_length=1, description="all must match the alert's labels")
    starts_at: datetime | None = Field(None, description="default: now")
    ends_at: datetime
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000, description="why")


class SilenceOut(BaseModel):
    id: str
    matchers: list[Matcher]
    starts_at: str | None
    ends_at: str | None
    created_by: str
    comment: str
    status: Literal["pending", "active", "expired"]
    matching_alerts: int = Field(description="pending or firing alerts it silences now")


def _silence_out(v: SilenceView) -> SilenceOut:
    r = v.row
    return SilenceOut(id=r.id, matchers=v.matchers, starts_at=rfc3339_opt(r.starts_at), ends_at=rfc3339_opt(r.ends_at),
                      created_by=r.created_by, comment=r.comment, status=v.status, matching_alerts=v.matching_alerts)


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(history: HistoryDep, include_expired: bool = False) -> list[SilenceOut]:
    return [_silence_out(v) for v in history.silences(utcnow(), include_expired=include_expired)]


@router.post("/silences", status_code=201, response_model=SilenceOut, dependencies=[AdminAuthenticated],
             responses={422: {}})
def create_silence(body: SilenceIn, history: HistoryDep) -> SilenceOut:
    """Silence alerts whose labels match every matcher, until `ends_at`. Silenced alerts are still
    recorded (history, GET /v1/alerts with `silenced_by`) but not delivered."""
    now = utcnow()
    try:
        return _silence_out(history.add_silence(
            matchers=body.matchers, starts_at=aware(body.starts_at) if body.starts_at else now,
            ends_at=aware(body.ends_at), created_by=body.created_by, comment=body.comment, now=now))
    except Conflict as exc:
        raise HTTPException(422, str(exc)) from exc


@router.delete("/silences/{silence_id}", status_code=204, dependencies=[AdminAuthenticated], responses={404: {}},
               response_class=Response)
def expire_silence(silence_id: str, history: HistoryDep) -> Response:
    try:
        history.expire_silence(silence_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(status_code=204)


# -- notifications -------------------------------------------------------------------------------
class NotificationOut(BaseModel):
    id: int
    alert_id: str
    target: str
    reason: str = Field(description="firing, severity_changed, resolved, repeat or escalation")
    status: Literal["pending", "parked", "delivered"]
    attempts: int
    last_error: str | None = Field(description="the last failure; for a parked notification, why it was parked")
    created_at: str | None
    next_at: str | None = Field(description="the next attempt (pending ones)")
    delivered_at: str | None
    parked_at: str | None
    retried_at: str | None = Field(description="the last retry an admin asked for")
    alert: dict[str, Any] = Field(description="the alert as the notification carries it")


class NotificationsOut(BaseModel):
    notifications: list[NotificationOut]
    total: int = Field(description="notifications matching the filters (before limit)")


class RetryOut(BaseModel):
    retried: list[int] = Field(description="queued again: sent at once")
    superseded: list[int] = Field(description="left parked: a later notification of the alert reached the target")


# no control characters (PostgreSQL refuses NUL in a text) and the columns' lengths
TargetName = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f]*$")]
AlertId = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
NotificationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _notification_out(r: OutboxRow) -> NotificationOut:
    return NotificationOut(id=r.id, alert_id=r.alert_id, target=r.target, reason=r.reason, status=status_of(r),
                           attempts=r.attempts, last_error=r.last_error, created_at=rfc3339_opt(r.created_at),
                           next_at=rfc3339_opt(r.next_at), delivered_at=rfc3339_opt(r.delivered_at),
                           parked_at=rfc3339_opt(r.parked_at), retried_at=rfc3339_opt(r.retried_at), alert=r.payload)


@router.get("/notifications", response_model=NotificationsOut)
def list_notifications(
    history: HistoryDep,
    status: Literal["pending", "parked", "delivered"] | None = None,
    target: TargetName = None,
    alert_id: AlertId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NotificationsOut:
    """Notifications of the outbox, newest first: `status=parked` lists those that failed
    permanently (or for a day), with the reason in `last_error`."""
    rows, total = history.notifications(NotificationQuery(status=status, target=target, alert_id=alert_id,
                                                          limit=limit))
    return NotificationsOut(notifications=[_notification_out(r) for r in rows], total=total)


@router.post("/notifications/retry", response_model=RetryOut, dependencies=[AdminAuthenticated])
def retry_notifications(history: HistoryDep, target: TargetName = None, alert_id: AlertId = None) -> RetryOut:
    """Send the parked notifications again (of one target or alert, or all), e.g. after fixing the
    target. One superseded by a later notification of its alert to that target stays parked."""
    retried, superseded = history.retry_parked(now=utcnow(), target=target, alert_id=alert_id)
    return RetryOut(retried=retried, superseded=superseded)


@router.post("/notifications/{notification_id}/retry", response_model=NotificationOut,
             dependencies=[AdminAuthenticated],
             responses={404: {}, 409: {"description": "not parked, or superseded by a later notification"}})
def retry_notification(notification_id: NotificationId, history: HistoryDep) -> NotificationOut:
    """Send one parked notification again."""
    try:
        row = history.notification(notification_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    if status_of(row) != "parked":
        raise HTTPException(409, f"notification {notification_id} is {status_of(row)}; only parked ones are retried")
    _, superseded = history.retry_parked(now=utcnow(), notification_id=notification_id)
    if superseded:
        raise HTTPException(409, f"notification {notification_id} is superseded: a later notification of alert "
                            f"{row.alert_id} reached {row.target}; discard it (DELETE) instead")
    return _notification_out(history.notification(notification_id))


@router.delete("/notifications/{notification_id}", status_code=204, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {"description": "not parked"}}, response_class=Response)
def discard_notification(notification_id: NotificationId, history: HistoryDep) -> Response:
    """Discard a parked notification (the alert's history keeps the transition)."""
    try:
        history.discard_parked(notification_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    return Response(status_code=204)
