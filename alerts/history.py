"""The alert history repository: alerts, their events (transitions, acks, escalations), silences,
and for the API the notifications of the outbox (listing, retrying and discarding parked ones).

The one place that builds and reads these rows; the notifier (within its own transactions) and the
API (one call, one transaction) both go through it.

    history = AlertHistory(engine)
    rows, total = history.alerts(AlertQuery(state=["firing"]))
    history.acknowledge(alert_id, by="lead", note="on it", now=utcnow())
    history.retry_parked(target="oncall-hook", now=utcnow())   # after fixing the target

Errors: `NotFound` and `Conflict` (both `HistoryError`), which the API turns into 404 and 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from alerts.routing import Matcher, alert_labels, silenced_by
from db.schema import AlertEventRow, AlertRow, DeliveryStatRow, OutboxRow, ParkedTransitionRow, SilenceRow
from stream.clock import aware, utc

Silences = list[tuple[str, list[Matcher]]]
SilenceStatus = Literal["pending", "active", "expired"]
NotificationStatus = Literal["pending", "parked", "delivered"]


class HistoryError(Exception):
    """A request the history refuses; the message says why."""


class NotFound(HistoryError):
    pass


class Conflict(HistoryError):
    pass


def payload(a: AlertRow) -> dict[str, Any]:
    """The alert as a notification carries it (and as its labels are computed from)."""
    return {
        "alert_id": a.id, "rule_id": a.rule_id, "scope": a.scope, "kpi": a.kpi, "window": a.window, "op": a.op,
        "state": a.state, "severity": a.severity, "value": a.value, "count": a.count, "threshold": a.threshold,
        "labels": a.labels, "summary": a.summary, "intervention": a.intervention, "runbook_url": a.runbook_url,
        "started_at": a.firing_at.timestamp() if a.firing_at else None,
        "ts": (a.resolved_at or a.updated_at).timestamp(),
        "acked_by": a.acked_by, "escalation_level": a.escalation_level,
    }


def labels_of(a: AlertRow) -> dict[str, str]:
    return alert_labels(payload(a))


# -- within a caller's transaction (the notifier) ----------------------------------------------------
def apply_transition(s: Session, t: dict[str, Any]) -> AlertRow | None:
    """Bring the alert row up to transition `t` (a `Transition.to_json()`); None for a replayed one."""
    seq = int(str(t["event_id"]).rsplit("/", 1)[1])
    a = s.get(AlertRow, t["alert_id"])
    if a is not None and seq <= a.last_seq:
        return None
    ts = utc(t["ts"])
    if a is None:
        a = AlertRow(id=t["alert_id"], pending_at=ts, labels={}, last_seq=0, escalation_level=0, count=0)
        s.add(a)
    a.rule_id, a.scope, a.kpi, a.window, a.op = t["rule_id"], t["scope"], t["kpi"], t["window"], t["op"]
    prev_sev = a.severity
    a.state, a.severity, a.value, a.count, a.threshold = t["state"], t["severity"], t["value"], t["count"], \
        t["threshold"]
    a.labels, a.summary, a.intervention, a.runbook_url = t["labels"], t["summary"], t["intervention"], \
        t["runbook_url"]
    a.updated_at, a.last_seq = ts, seq
    if t["kind"] == "firing":
        a.firing_at = ts
    if t["kind"] in ("firing", "severity_changed"):
        if t["severity"] != "critical":
            a.critical_at, a.escalation_level = None, 0  # the escalation clock starts again
        elif prev_sev != "critical" or a.critical_at is None or t["kind"] == "firing":
            a.critical_at = ts
    if t["kind"] == "resolved":
        a.resolved_at = ts
    return a


def append_event(s: Session, a: AlertRow, *, event_id: str, kind: str, ts: datetime,
                 detail: dict[str, Any]) -> None:
    """One history row: the alert as it is now, and what happened."""
    s.add(AlertEventRow(event_id=event_id, alert_id=a.id, kind=kind, state=a.state, severity=a.severity,
                        value=a.value, count=a.count, threshold=a.threshold, window=a.window, scope=a.scope,
                        rule_id=a.rule_id, ts=ts, detail=detail))


def active_silences(s: Session, now: datetime) -> Silences:
    rows = s.scalars(select(SilenceRow).where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now,
                                              SilenceRow.expired.is_(False)))
    return [(r.id, [Matcher.model_validate(m) for m in r.matchers]) for r in rows]


def silence_for(silences: Silences, labels: dict[str, str]) -> str | None:
    return next((sid for sid, matchers in silences if silenced_by(matchers, labels)), None)


# -- standalone reads and writes (the API) -------------------------------------------------------------
@dataclass(frozen=True)
class AlertQuery:
    state: list[str] | None = None  # default: every state but inactive
    severity: list[str] | None = None
    scope: str | None = None  # exact, or a glob with * and ?
    rule: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    acked: bool | None = None
    limit: int = 100


@dataclass(frozen=True)
class SilenceView:
    row: SilenceRow
    matchers: list[Matcher]
    status: SilenceStatus
    matching_alerts: int


@dataclass(frozen=True)
class AlertStats:
    """What /metrics says of alerts and delivery (one read of each table)."""

    firing: dict[str, int] = field(default_factory=dict)  # by severity
    pending: int = 0
    outbox_depth: dict[str, int] = field(default_factory=dict)  # by target, parked ones not included
    outbox_oldest: datetime | None = None
    delivery: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # target -> attempts, failures, ok
    parked: dict[str, int] = field(default_factory=dict)  # by target
    parked_transitions: int = 0


@dataclass(frozen=True)
class NotificationQuery:
    status: NotificationStatus | None = None
    target: str | None = None
    alert_id: str | None = None
    limit: int = 100


def status_of(row: OutboxRow) -> NotificationStatus:
    return "delivered" if row.delivered_at else "parked" if row.parked_at else "pending"


class AlertHistory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alerts(self, q: AlertQuery) -> tuple[list[AlertRow], int]:
        """Alerts matching `q`, newest change first, and how many match before the limit."""
        sel = select(AlertRow)
        sel = sel.where(AlertRow.state.in_(q.state)) if q.state else sel.where(AlertRow.state != "inactive")
        if q.severity:
            sel = sel.where(AlertRow.severity.in_(q.severity))
        if q.scope and any(c in q.scope for c in "*?"):
            sel = sel.where(AlertRow.scope.like(q.scope.replace("*", "%").replace("?", "_")))
        elif q.scope:
            sel = sel.where(AlertRow.scope == q.scope)
        if q.rule:
            sel = sel.where(AlertRow.rule_id == q.rule)
        if q.since:
            sel = sel.where(AlertRow.updated_at >= aware(q.since))
        if q.until:
            sel = sel.where(AlertRow.updated_at < aware(q.until))
        if q.acked is not None:
            sel = sel.where(AlertRow.acked_at.is_not(None) if q.acked else AlertRow.acked_at.is_(None))
        with Session(self.engine, expire_on_commit=False) as s:
            total = s.scalar(select(func.count()).select_from(sel.subquery())) or 0
            rows = list(s.scalars(sel.order_by(AlertRow.updated_at.desc(), AlertRow.id).limit(q.limit)))
        return rows, total

    def alert(self, alert_id: str) -> tuple[AlertRow, list[AlertEventRow]]:
        """One alert and its history, oldest event first."""
        with Session(self.engine, expire_on_commit=False) as s:
            a = s.get(AlertRow, alert_id)
            if a is None:
                raise NotFound(f"no alert {alert_id!r}")
            events = list(s.scalars(select(AlertEventRow).where(AlertEventRow.alert_id == alert_id)
                                    .order_by(AlertEventRow.ts, AlertEventRow.id)))
        return a, events

    def acknowledge(self, alert_id: str, *, by: str, note: str, now: datetime) -> AlertRow:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            a = s.get(AlertRow, alert_id)
            if a is None:
                raise NotFound(f"no alert {alert_id!r}")
            if a.state not in ("pending", "firing"):
                raise Conflict(f"alert {alert_id} is {a.state}; only pending or firing alerts are acknowledged")
            a.acked_by, a.acked_at, a.ack_note = by, now, note
            n = s.scalar(select(func.count()).where(AlertEventRow.alert_id == alert_id,
                                                     AlertEventRow.kind == "acknowledged")) or 0
            append_event(s, a, event_id=f"{alert_id}/ack/{n + 1}", kind="acknowledged", ts=now,
                         detail={"by": by, "note": note})
        return a

    # -- silences ----------------------------------------------------------------------------------
    def silences(self, now: datetime, *, include_expired: bool = False) -> list[SilenceView]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(SilenceRow).order_by(SilenceRow.created_at.desc())
            if not include_expired:
                q = q.where(SilenceRow.ends_at > now, SilenceRow.expired.is_(False))
            return [self._silence_view(s, r, now) for r in s.scalars(q)]

    def add_silence(self, *, matchers: list[Matcher], starts_at: datetime, ends_at: datetime, created_by: str,
                    comment: str, now: datetime) -> SilenceView:
        if ends_at <= starts_at or ends_at <= now:
            raise Conflict("ends_at must be in the future and after starts_at")
        row = SilenceRow(id=uuid.uuid4().hex[:16], matchers=[m.model_dump() for m in matchers], starts_at=starts_at,
                         ends_at=ends_at, created_by=created_by, comment=comment, created_at=now, expired=False)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
            s.flush()
            return self._silence_view(s, row, now)

    def expire_silence(self, silence_id: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(SilenceRow, silence_id)
            if row is None:
                raise NotFound(f"no silence {silence_id!r}")
            row.expired = True

    @staticmethod
    def _silence_view(s: Session, row: SilenceRow, now: datetime) -> SilenceView:
        matchers = [Matcher.model_validate(m) for m in row.matchers]
        status: SilenceStatus = "expired" if row.expired or row.ends_at <= now else \
            "pending" if row.starts_at > now else "active"
        n = 0
        if status == "active":
            for a in s.scalars(select(AlertRow).where(AlertRow.state.in_(("pending", "firing")))):
                n += silenced_by(matchers, labels_of(a))
        return SilenceView(row, matchers, status, n)

    # -- notifications (the outbox) -------------------------------------------------------------------
    def notifications(self, q: NotificationQuery) -> tuple[list[OutboxRow], int]:
        """Notifications matching `q`, newest first, and how many match before the limit."""
        sel = select(OutboxRow)
        if q.status == "delivered":
            sel = sel.where(OutboxRow.delivered_at.is_not(None))
        elif q.status == "parked":
            sel = sel.where(OutboxRow.delivered_at.is_(None), OutboxRow.parked_at.is_not(None))
        elif q.status == "pending":
            sel = sel.where(OutboxRow.delivered_at.is_(None), OutboxRow.parked_at.is_(None))
        if q.target:
            sel = sel.where(OutboxRow.target == q.target)
        if q.alert_id:
            sel = sel.where(OutboxRow.alert_id == q.alert_id)
        with Session(self.engine, expire_on_commit=False) as s:
            total = s.scalar(select(func.count()).select_from(sel.subquery())) or 0
            rows = list(s.scalars(sel.order_by(OutboxRow.id.desc()).limit(q.limit)))
        return rows, total

    def retry_parked(self, *, now: datetime, notification_id: int | None = None, target: str | None = None,
                     alert_id: str | None = None) -> tuple[list[int], list[int]]:
        """Queue parked notifications again (one, or all of a target or alert, or all): they are sent
        at once, and park again only on a permanent failure or a day of failures. A parked one whose
        alert has since reached the same target with a later notification is superseded and left
        parked: sending it now would tell an old state (a resolved alert firing again). Returns the
        ids retried and the ids superseded."""
        later = aliased(OutboxRow)
        superseded = exists().where(later.alert_id == OutboxRow.alert_id, later.target == OutboxRow.target,
                                    later.id > OutboxRow.id, later.delivered_at.is_not(None))
        sel = select(OutboxRow.id, superseded).where(OutboxRow.parked_at.is_not(None),
                                                     OutboxRow.delivered_at.is_(None))
        if notification_id is not None:
            sel = sel.where(OutboxRow.id == notification_id)
        if target:
            sel = sel.where(OutboxRow.target == target)
        if alert_id:
            sel = sel.where(OutboxRow.alert_id == alert_id)
        with Session(self.engine) as s, s.begin():
            found = s.execute(sel.order_by(OutboxRow.id)).tuples().all()
            retried = [i for i, old in found if not old]
            if retried:
                s.execute(update(OutboxRow).where(OutboxRow.id.in_(retried), OutboxRow.parked_at.is_not(None))
                          .values(parked_at=None, retried_at=now, next_at=now, lease_owner=None, lease_until=None))
        return retried, [i for i, old in found if old]

    def notification(self, notification_id: int) -> OutboxRow:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(OutboxRow, notification_id)
        if row is None:
            raise NotFound(f"no notification {notification_id}")
        return row

    def discard_parked(self, notification_id: int) -> None:
        """Delete a parked notification (one that is superseded, or that nobody needs any more)."""
        with Session(self.engine) as s, s.begin():
            row = s.get(OutboxRow, notification_id)
            if row is None:
                raise NotFound(f"no notification {notification_id}")
            if status_of(row) != "parked":
                raise Conflict(f"notification {notification_id} is {status_of(row)}; only parked ones are discarded")
            s.execute(delete(OutboxRow).where(OutboxRow.id == notification_id))

    # -- metrics -----------------------------------------------------------------------------------
    def stats(self) -> AlertStats:
        waiting = (OutboxRow.delivered_at.is_(None), OutboxRow.parked_at.is_(None))
        with Session(self.engine) as s:
            firing = dict(s.execute(select(AlertRow.severity, func.count()).where(AlertRow.state == "firing")
                                    .group_by(AlertRow.severity)).tuples().all())
            pending = s.scalar(select(func.count()).where(AlertRow.state == "pending")) or 0
            depth = dict(s.execute(select(OutboxRow.target, func.count()).where(*waiting)
                                   .group_by(OutboxRow.target)).tuples().all())
            oldest = s.scalar(select(func.min(OutboxRow.created_at)).where(*waiting))
            delivery = {r.target: (r.attempts, r.failures, r.delivered) for r in s.scalars(select(DeliveryStatRow))}
            parked = dict(s.execute(select(OutboxRow.target, func.count()).where(
                OutboxRow.parked_at.is_not(None), OutboxRow.delivered_at.is_(None))
                .group_by(OutboxRow.target)).tuples().all())
            refused = s.scalar(select(func.count()).select_from(ParkedTransitionRow)) or 0
        return AlertStats({str(k): int(v) for k, v in firing.items() if k}, int(pending),
                          {str(k): int(v) for k, v in depth.items()}, aware(oldest) if oldest else None, delivery,
                          {str(k): int(v) for k, v in parked.items()}, int(refused))

