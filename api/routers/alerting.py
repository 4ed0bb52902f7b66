"""Rules, alerts, acknowledgements and silences (alerts.md). Reads and writes go to the database;
rule changes are also published to the rules topic, which the workers follow.

Writes need the admin bearer token (SQM_ADMIN_TOKEN).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.db import AlertEventRow, AlertRow, SilenceRow
from alerts.feed import publish_rule
from alerts.notifier import snapshot
from alerts.routing import Matcher, alert_labels, silenced_by
from alerts.rulebook import Rulebook, RuleRefused
from api.deps import AdminAuthenticated, RuntimeDep

router = APIRouter(prefix="/v1", tags=["alerts"])


def _db(rt: RuntimeDep) -> Any:
    if rt.db is None:
        raise HTTPException(503, "database not connected")
    return rt.db


def _book(rt: RuntimeDep) -> Rulebook:
    if rt.rulebook is None:
        raise HTTPException(503, "database not connected")
    return rt.rulebook


def _iso(d: datetime | None) -> str | None:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else None


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
def list_rules(rt: RuntimeDep) -> RulesOut:
    rules, errors = _book(rt).snapshot()
    return RulesOut(rules=[RuleOut(source=s, rule=r.to_doc()) for r, s in rules],
                    errors=[e.model_dump() for e in errors])


@router.get("/rules/{rule_id}", response_model=RuleOut, responses={404: {}})
def get_rule(rule_id: str, rt: RuntimeDep) -> RuleOut:
    found = _book(rt).get(rule_id)
    if found is None:
        raise HTTPException(404, f"no rule {rule_id!r}")
    return RuleOut(source=found[1], rule=found[0].to_doc())


async def _publish(rt: RuntimeDep, rule_id: str) -> None:
    if rt.producer is not None:
        found = _book(rt).get(rule_id)
        await publish_rule(rt.producer, rt.settings.rules_topic, rule_id, found[0] if found else None)


@router.post("/rules", status_code=201, response_model=RuleOut, dependencies=[AdminAuthenticated],
             responses={409: {}, 422: {"description": "what is wrong, field by field"}})
async def create_rule(doc: RuleBody, rt: RuntimeDep, by: str | None = None) -> Any:
    try:
        rule = _book(rt).create(doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(rt, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.put("/rules/{rule_id}", response_model=RuleOut, dependencies=[AdminAuthenticated],
            responses={404: {}, 409: {}, 422: {}})
async def replace_rule(rule_id: str, doc: RuleBody, rt: RuntimeDep, by: str | None = None) -> Any:
    try:
        rule = _book(rt).replace(rule_id, doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(rt, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.delete("/rules/{rule_id}", status_code=204, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {}}, response_class=Response)
async def delete_rule(rule_id: str, rt: RuntimeDep) -> Response:
    try:
        _book(rt).delete(rule_id)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(rt, rule_id)
    return Response(status_code=204)


# -- alerts --------------------------------------------------------------------------------------
class AlertOut(BaseModel):
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


def _out(a: AlertRow) -> AlertOut:
    return AlertOut(id=a.id, rule_id=a.rule_id, scope=a.scope, kpi=a.kpi, window=a.window, state=a.state,
                    severity=a.severity, value=a.value, count=a.count, threshold=a.threshold, op=a.op,
                    labels=alert_labels(snapshot(a)),
                    summary=a.summary, intervention=a.intervention, runbook_url=a.runbook_url,
                    pending_at=_iso(a.pending_at), firing_at=_iso(a.firing_at), resolved_at=_iso(a.resolved_at),
                    updated_at=_iso(a.updated_at), acked_by=a.acked_by, acked_at=_iso(a.acked_at),
                    ack_note=a.ack_note, silenced_by=a.silenced_by, escalation_level=a.escalation_level)


@router.get("/alerts", response_model=AlertsOut)
def list_alerts(
    rt: RuntimeDep,
    state: Annotated[list[Literal["pending", "firing", "resolved", "inactive"]] | None, Query()] = None,
    severity: Annotated[list[Literal["warning", "critical"]] | None, Query()] = None,
    scope: Annotated[str | None, Query(description="a scope, or a glob such as team:* ")] = None,
    rule: str | None = None,
    since: Annotated[datetime | None, Query(description="updated at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="updated before (RFC 3339)")] = None,
    acked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertsOut:
    """Alerts, newest change first. Without `state`: pending and firing ones plus the resolved ones."""
    q = select(AlertRow)
    q = q.where(AlertRow.state.in_(state)) if state else q.where(AlertRow.state != "inactive")
    if severity:
        q = q.where(AlertRow.severity.in_(severity))
    if scope and any(c in scope for c in "*?"):
        q = q.where(AlertRow.scope.like(scope.replace("*", "%").replace("?", "_")))
    elif scope:
        q = q.where(AlertRow.scope == scope)
    if rule:
        q = q.where(AlertRow.rule_id == rule)
    if since:
        q = q.where(AlertRow.updated_at >= _aware(since))
    if until:
        q = q.where(AlertRow.updated_at < _aware(until))
    if acked is not None:
        q = q.where(AlertRow.acked_at.is_not(None) if acked else AlertRow.acked_at.is_(None))
    with Session(_db(rt)) as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(AlertRow.updated_at.desc(), AlertRow.id).limit(limit)).all()
        return AlertsOut(alerts=[_out(a) for a in rows], total=total)


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses={404: {}})
def get_alert(alert_id: str, rt: RuntimeDep) -> AlertDetail:
    """One alert with its history (every transition, acknowledgement and escalation)."""
    with Session(_db(rt)) as s:
        a = s.get(AlertRow, alert_id)
        if a is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        events = s.scalars(select(AlertEventRow).where(AlertEventRow.alert_id == alert_id)
                           .order_by(AlertEventRow.ts, AlertEventRow.id))
        history = [AlertEventOut(event_id=e.event_id, kind=e.kind, state=e.state, severity=e.severity,
                                 value=e.value, count=e.count, threshold=e.threshold, ts=_iso(e.ts),
                                 detail=e.detail) for e in events]
        return AlertDetail(**_out(a).model_dump(), history=history)


class AckIn(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who takes it")
    note: str = Field("", max_length=2000)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, dependencies=[AdminAuthenticated],
             responses={404: {}, 409: {"description": "the alert is not pending or firing"}})
def ack_alert(alert_id: str, body: AckIn, rt: RuntimeDep) -> AlertOut:
    """Acknowledge: stops the escalation of this alert (repeats go on while it fires)."""
    now = datetime.now(UTC)
    with Session(_db(rt)) as s, s.begin():
        a = s.get(AlertRow, alert_id)
        if a is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        if a.state not in ("pending", "firing"):
            raise HTTPException(409, f"alert {alert_id} is {a.state}; only pending or firing alerts are acknowledged")
        a.acked_by, a.acked_at, a.ack_note = body.by, now, body.note
        n = s.scalar(select(func.count()).where(AlertEventRow.alert_id == alert_id,
                                                 AlertEventRow.kind == "acknowledged")) or 0
        s.add(AlertEventRow(event_id=f"{alert_id}/ack/{n + 1}", alert_id=alert_id, kind="acknowledged",
                            state=a.state, severity=a.severity, value=a.value, count=a.count,
                            threshold=a.threshold, window=a.window, scope=a.scope, rule_id=a.rule_id, ts=now,
                            detail={"by": body.by, "note": body.note}))
        s.flush()
        return _out(a)


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


def _silence_out(s: Session, row: SilenceRow, now: datetime) -> SilenceOut:
    matchers = [Matcher.model_validate(m) for m in row.matchers]
    status: Literal["pending", "active", "expired"] = "expired" if row.expired or row.ends_at <= now else \
        "pending" if row.starts_at > now else "active"
    n = 0
    if status == "active":
        for a in s.scalars(select(AlertRow).where(AlertRow.state.in_(("pending", "firing")))):
            labels = alert_labels(snapshot(a))
            n += silenced_by(matchers, labels)
    return SilenceOut(id=row.id, matchers=matchers, starts_at=_iso(row.starts_at), ends_at=_iso(row.ends_at),
                      created_by=row.created_by, comment=row.comment, status=status, matching_alerts=n)


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(rt: RuntimeDep, include_expired: bool = False) -> list[SilenceOut]:
    now = datetime.now(UTC)
    with Session(_db(rt)) as s:
        q = select(SilenceRow).order_by(SilenceRow.created_at.desc())
        if not include_expired:
            q = q.where(SilenceRow.ends_at > now, SilenceRow.expired.is_(False))
        return [_silence_out(s, r, now) for r in s.scalars(q)]


@router.post("/silences", status_code=201, response_model=SilenceOut, dependencies=[AdminAuthenticated],
             responses={422: {}})
def create_silence(body: SilenceIn, rt: RuntimeDep) -> SilenceOut:
    """Silence alerts whose labels match every matcher, until `ends_at`. Silenced alerts are still
    recorded (history, GET /v1/alerts with `silenced_by`) but not delivered."""
    now = datetime.now(UTC)
    starts = _aware(body.starts_at) if body.starts_at else now
    ends = _aware(body.ends_at)
    if ends <= starts or ends <= now:
        raise HTTPException(422, "ends_at must be in the future and after starts_at")
    row = SilenceRow(id=uuid.uuid4().hex[:16], matchers=[m.model_dump() for m in body.matchers], starts_at=starts,
                     ends_at=ends, created_by=body.created_by, comment=body.comment, created_at=now, expired=False)
    with Session(_db(rt)) as s, s.begin():
        s.add(row)
        s.flush()
        return _silence_out(s, row, now)


@router.delete("/silences/{silence_id}", status_code=204, dependencies=[AdminAuthenticated], responses={404: {}},
               response_class=Response)
def expire_silence(silence_id: str, rt: RuntimeDep) -> Response:
    with Session(_db(rt)) as s, s.begin():
        row = s.get(SilenceRow, silence_id)
        if row is None:
            raise HTTPException(404, f"no silence {silence_id!r}")
        row.expired = True
    return Response(status_code=204)

