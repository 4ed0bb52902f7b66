"""The alert history repository: alerts, their events (transitions, acks, escalations), silences,
and for the API the notifications of the outbox (listing, retrying and discarding parked ones).

The one place that builds and reads these rows; the notifier (within its own transactions) and the
API (one call, one transaction) both go through it.

    history = AlertRepository(engine)
    rows, total = history.alerts(AlertQuery(state=["firing"]))
    history.acknowledge(alert_id, by="lead", note="on it", now=utcnow(), reading=(0.12, 230))
    history.record_check(alert_id, after_s=900, reading=(0.07, 180), now=utcnow())  # 15 min after
    history.retry_parked(target="oncall-hook", now=utcnow())   # after fixing the target

Errors: `NotFound` and `Conflict` (both `HistoryError`), which the API turns into 404 and 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from alerts.followup import Reading
from alerts.routing import Matcher, alert_labels, silenced_by
from db.schema import (
    RESPONSE_BUCKETS,
    AlertEventRow,
    AlertRow,
    AlertTimingRow,
    DeliveryStatRow,
    OutboxRow,
    ParkedTransitionRow,
    SilenceRow,
)
from stream.clock import aware, utc
from stream.scopes import scope_partition

Silences = list[tuple[str, list[Matcher]]]
# Upper bounds of the time-to-acknowledge and time-to-resolve histograms (AlertTimingRow b0..b9)
RESPONSE_BUCKETS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
assert len(RESPONSE_BUCKETS_S) == RESPONSE_BUCKETS
# An ended alert's last transition number: every later transition of it is a replay (alert ids
# never repeat: a condition that comes back is a new alert)
ENDED_SEQ = 2**31 - 1
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
        "acked_by": a.acked_by, "escalation_level": a.escalation_level, "texts": a.texts or {},
        "live_value": a.live_value, "live_count": a.live_count,
        "live_at": a.live_at.timestamp() if a.live_at else None, "end_reason": a.end_reason,
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
    a.texts = t.get("texts") or {}
    a.live_value, a.live_count, a.live_at = t["value"], t["count"], ts
    if t.get("reason"):
        a.end_reason = t["reason"]
    if t["kind"] == "firing":
        a.firing_at = ts
    if t["kind"] in ("firing", "severity_changed"):
        if t["severity"] != "critical":
            a.critical_at, a.escalation_level = None, 0  # the escalation clock starts again
        elif prev_sev != "critical" or a.critical_at is None or t["kind"] == "firing":
            a.critical_at = ts
    if t["kind"] == "resolved":
        a.resolved_at = ts
        if a.firing_at is not None:
            observe(s, a.rule_id, "resolve", (ts - aware(a.firing_at)).total_seconds())
    return a


def apply_live(s: Session, v: dict[str, Any]) -> bool:
    """Keep the engine's latest live value of a pending or firing alert (for repeat notices)."""
    a = s.get(AlertRow, v["alert_id"])
    ts = utc(float(v["ts"]))
    if a is None or a.state not in ("pending", "firing") or (a.live_at is not None and aware(a.live_at) >= ts):
        return False
    a.live_value, a.live_count, a.live_at = v["value"], int(v["count"]), ts
    return True


def unheld(s: Session, census: dict[str, Any]) -> list[AlertRow]:
    """The pending and firing alerts of the census's partition that the engine does not hold and that
    began before it: a new broker (the engine starts with no alert state), a rule deleted while no
    worker ran, a transition that never arrived."""
    held, ts = set(census["alerts"]), utc(float(census["ts"]))
    q, n = int(census["partition"]), int(census["partitions"])
    rows = s.scalars(select(AlertRow).where(AlertRow.state.in_(("pending", "firing")), AlertRow.pending_at < ts))
    return [a for a in rows if a.id not in held and scope_partition(a.scope, n) == q]


def end_alert(s: Session, a: AlertRow, *, reason: str, now: datetime) -> str:
    """End an alert the engine no longer holds (a firing one resolves, a pending one is cancelled),
    with the reason; every later transition of it is taken for a replay. Returns the event's kind."""
    kind = "resolved" if a.state == "firing" else "cancelled"
    a.state = "resolved" if kind == "resolved" else "inactive"
    a.end_reason, a.updated_at, a.last_seq = reason, now, ENDED_SEQ
    a.live_value, a.live_count, a.live_at = None, None, None
    if kind == "resolved":
        a.resolved_at = now
        if a.firing_at is not None:
            observe(s, a.rule_id, "resolve", (now - aware(a.firing_at)).total_seconds())
    return kind


def observe(s: Session, rule_id: str, measure: str, seconds: float) -> None:
    """One observation of a response-time histogram, incremented in place (no lost update)."""
    seconds = max(0.0, seconds)
    bucket = next((i for i, b in enumerate(RESPONSE_BUCKETS_S) if seconds <= b), None)
    values: dict[str, Any] = {"count": AlertTimingRow.count + 1, "sum_s": AlertTimingRow.sum_s + seconds}
    if bucket is not None:
        col = getattr(AlertTimingRow, f"b{bucket}")
        values[f"b{bucket}"] = col + 1
    where = (AlertTimingRow.rule_id == rule_id, AlertTimingRow.measure == measure)
    if s.execute(update(AlertTimingRow).where(*where).values(**values)).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with s.begin_nested():
            zeros = {f"b{i}": 0 for i in range(RESPONSE_BUCKETS)}
            s.add(AlertTimingRow(rule_id=rule_id, measure=measure, count=0, sum_s=0.0, **zeros))
    except IntegrityError:
        pass  # created meanwhile by another writer
    s.execute(update(AlertTimingRow).where(*where).values(**values))


def readings_of(events: list[AlertEventRow]) -> list[Reading]:
    """The KPI at the acknowledgement and at each check after it, from an alert's history."""
    out = []
    for e in events:
        d = e.detail or {}
        if e.kind == "acknowledged" and "value" in d:
            out.append(Reading(0, d["value"], int(d.get("count") or 0)))
        elif e.kind == "check":
            out.append(Reading(int(d["after_s"]), d.get("value"), int(d.get("count") or 0)))
    return out


def append_event(s: Session, a: AlertRow, *, event_id: str, kind: str, ts: datetime,
                 detail: dict[str, Any]) -> None:
    """One history row: the alert as it is now, and what happened."""
    s.add(AlertEventRow(event_id=event_id, alert_id=a.id, kind=kind, state=a.state, severity=a.severity,
                        value=a.value, count=a.count, threshold=a.threshold, window=a.window, scope=a.scope,
                        rule_id=a.rule_id, ts=ts, detail=detail))


def active_silences(s: Session, now: datetime) -> Silences:
    rows = s.scalars(select(SilenceRow).where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now,
                                              SilenceRow.expired.is_(False)))
    return [(r.id, [Matcher.model_validate(m, context=STORED) for m in r.matchers]) for r in rows]


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
    id: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
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
    # (rule, measure) -> (counts within each bound of RESPONSE_BUCKETS_S, count, sum of seconds)
    timing: dict[tuple[str, str], tuple[list[int], int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationQuery:
    status: NotificationStatus | None = None
    target: str | None = None
    alert_id: str | None = None
    limit: int = 100


STORED = {"stored": True}  # a matcher read back: a pattern refused since it was saved matches nothing


def status_of(row: OutboxRow) -> NotificationStatus:
    return "delivered" if row.delivered_at else "parked" if row.parked_at else "pending"


class AlertRepository:
    """Alerts, their events, silences and the notification outbox in the database: what the notifier
    writes and the API reads (the KPI history is history/store.py's HistoryStore)."""

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

    def alert_row(self, alert_id: str) -> AlertRow:
        with Session(self.engine, expire_on_commit=False) as s:
            a = s.get(AlertRow, alert_id)
        if a is None:
            raise NotFound(f"no alert {alert_id!r}")
        return a

    def alert(self, alert_id: str) -> tuple[AlertRow, list[AlertEventRow]]:
        """One alert and its history, oldest event first."""
        with Session(self.engine, expire_on_commit=False) as s:
            a = s.get(AlertRow, alert_id)
            if a is None:
                raise NotFound(f"no alert {alert_id!r}")
            events = list(s.scalars(select(AlertEventRow).where(AlertEventRow.alert_id == alert_id)
                                    .order_by(AlertEventRow.ts, AlertEventRow.id)))
        return a, events

    def acknowledge(self, alert_id: str, *, by: str, note: str, now: datetime,
                    reading: tuple[float | None, int] | None = None) -> AlertRow:
        """Acknowledge a pending or firing alert once: `by` takes it (the key's name), `reading` is the
        rule's KPI now (the first reading of the follow-up). A second acknowledgement, even one racing
        this one, is refused with Conflict."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            # one conditional update: of two concurrent acknowledgements exactly one changes the row
            taken = s.execute(update(AlertRow).where(AlertRow.id == alert_id, AlertRow.acked_at.is_(None),
                                                     AlertRow.state.in_(("pending", "firing")))
                              .values(acked_by=by, acked_at=now, ack_note=note)).rowcount  # type: ignore[attr-defined]
            a = s.get(AlertRow, alert_id)
            if a is None:
                raise NotFound(f"no alert {alert_id!r}")
            if not taken:
                raise Conflict(f"alert {alert_id} was acknowledged by {a.acked_by} at {aware(a.acked_at):%H:%M:%S} UTC"
                               if a.acked_by and a.acked_at else
                               f"alert {alert_id} is {a.state}; only pending or firing alerts are acknowledged")
            detail: dict[str, Any] = {"by": by, "note": note}
            if reading is not None:
                detail.update(value=reading[0], count=reading[1])
            append_event(s, a, event_id=f"{alert_id}/ack", kind="acknowledged", ts=now, detail=detail)
            started = a.firing_at or a.pending_at
            observe(s, a.rule_id, "ack", (now - aware(started)).total_seconds())
        return a

    def readings(self, alert_ids: list[str]) -> dict[str, list[Reading]]:
        """The follow-up readings (acknowledgement and checks) of these alerts."""
        if not alert_ids:
            return {}
        with Session(self.engine) as s:
            events = s.scalars(select(AlertEventRow).where(AlertEventRow.alert_id.in_(alert_ids),
                                                           AlertEventRow.kind.in_(("acknowledged", "check"))))
            out: dict[str, list[AlertEventRow]] = {}
            for e in events:
                out.setdefault(e.alert_id, []).append(e)
        return {k: readings_of(v) for k, v in out.items()}

    def due_checks(self, now: datetime, longest_s: float) -> list[tuple[AlertRow, set[int]]]:
        """Alerts acknowledged within `longest_s` (the last check) and the checks they have."""
        with Session(self.engine, expire_on_commit=False) as s:
            acked = list(s.scalars(select(AlertRow).where(
                AlertRow.acked_at.is_not(None), AlertRow.acked_at >= now - timedelta(seconds=longest_s + 600))))
            done: dict[str, set[int]] = {}
            if acked:
                for alert_id, detail in s.execute(select(AlertEventRow.alert_id, AlertEventRow.detail).where(
                        AlertEventRow.alert_id.in_([a.id for a in acked]), AlertEventRow.kind == "check")):
                    done.setdefault(alert_id, set()).add(int(detail["after_s"]))
        return [(a, done.get(a.id, set())) for a in acked]

    def record_check(self, alert_id: str, *, after_s: int, reading: tuple[float | None, int], now: datetime) -> bool:
        """The rule's KPI `after_s` after the acknowledgement; False if recorded already (by another
        API replica)."""
        try:
            with Session(self.engine) as s, s.begin():
                a = s.get(AlertRow, alert_id)
                if a is None:
                    return False
                append_event(s, a, event_id=f"{alert_id}/check/{after_s}", kind="check", ts=now,
                             detail={"after_s": after_s, "value": reading[0], "count": reading[1]})
        except IntegrityError:
            return False
        return True

    def timings(self, since: datetime) -> list[tuple[str, str, list[float]]]:
        """(rule, measure, seconds) of the alerts that changed since `since`: time to acknowledge
        (from firing, or pending if acknowledged before it fired) and time to resolve (from firing)."""
        with Session(self.engine) as s:
            rows = s.execute(select(AlertRow.rule_id, AlertRow.pending_at, AlertRow.firing_at, AlertRow.acked_at,
                                    AlertRow.resolved_at).where(AlertRow.updated_at >= since)).tuples().all()
        out: dict[tuple[str, str], list[float]] = {}
        for rule, pending, firing, acked, resolved in rows:
            if acked is not None:
                start = aware(firing or pending)
                out.setdefault((rule, "ack"), []).append(max(0.0, (aware(acked) - start).total_seconds()))
            if resolved is not None and firing is not None:
                out.setdefault((rule, "resolve"), []).append(max(0.0, (aware(resolved) - aware(firing))
                                                                  .total_seconds()))
        return [(r, m, sorted(v)) for (r, m), v in sorted(out.items())]

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
        matchers = [Matcher.model_validate(m, context=STORED) for m in row.matchers]
        status: SilenceStatus = "expired" if row.expired or row.ends_at <= now else \
            "pending" if row.starts_at > now else "active"
        n = 0
        if status == "active":
            for a in s.scalars(select(AlertRow).where(AlertRow.state.in_(("pending", "firing")))):
                n += silenced_by(matchers, labels_of(a))
        return SilenceView(row.id, matchers, row.starts_at, row.ends_at, row.created_by, row.comment, status, n)

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
            timing = {(r.rule_id, r.measure): ([getattr(r, f"b{i}") for i in range(RESPONSE_BUCKETS)], r.count, r.sum_s)
                      for r in s.scalars(select(AlertTimingRow))}
        return AlertStats({str(k): int(v) for k, v in firing.items() if k}, int(pending),
                          {str(k): int(v) for k, v in depth.items()}, aware(oldest) if oldest else None, delivery,
                          {str(k): int(v) for k, v in parked.items()}, int(refused), timing)

