"""The notifier's work: history, routing into the outbox, repeats, escalation, delivery with retries.

Three steps, each safe to repeat and to run after a crash at any point:

- `ingest(transitions)`: one DB transaction per batch of transitions read from the alerts topic
  (committed on Kafka only after it): update the alert, append the history row (an event id seen
  before is skipped), and put one outbox row per target the routes choose, unless a silence
  matches (then the history row says which silence, and nothing is queued). Each transition is
  stored in a savepoint: one the database refuses (a NUL in a text on PostgreSQL, a malformed
  message) is parked in `parked_transitions` with the reason and the others are stored. A database
  that cannot be reached raises, and the whole batch is tried again. The topic also carries the
  engine's live values (kept for repeat notices) and its census of each scope partition: an alert
  of the database that the engine does not hold is ended with the reason (`ENDED_UNHELD`), and its
  ending goes to everyone who heard of it, like a resolution.
- `schedule(now)`: repeats of still-firing alerts after the repeat interval (for Alertmanager
  targets at least every re-send interval), and escalation of critical alerts not acknowledged
  within a level's delay. A repeat's dedupe key is its sequence number counted from when the alert
  fired (`repeat_key`), not the clock: two notifiers, or one restarted, that schedule the same
  repeat a second apart queue it once (the outbox's unique key; the later insert is dropped).
- `deliver(now)`: claim due outbox rows with a lease, send, mark delivered, or on failure
  (`alerts.delivery.classify`) either schedule the next attempt with backoff (transient) or park
  the row with the reason (permanent, or still failing `park_after_s` after it was queued or
  retried). A notifier killed mid-delivery leaves the lease to expire; the row is sent again
  (at-least-once). A result is recorded only while the row is still leased by this notifier as it
  claimed it: one whose lease expired and was taken by another notifier (which may have delivered
  it by then) is left to that one. Each notification carries an idempotency key (hash of the row's
  dedupe key and target), the same on every redelivery, for targets to drop duplicates. Rows of one
  alert and target are sent in order; a parked row no longer holds up the later ones. Rows for a
  target no longer in the notify file are held (never attempted, not counted as failures) and go
  out if the target is put back; `held()` counts them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, aliased

from alerts.delivery import Failure, backoff, classify, idempotency_key, one_line, send, stored_error
from alerts.evaluator import is_transition
from alerts.history import (
    Silences,
    append_event,
    apply_live,
    apply_transition,
    end_alert,
    labels_of,
    payload,
    silence_for,
    unheld,
)
from alerts.routing import Matcher, NotifyConfig, Route
from db.engine import unavailable
from db.schema import AlertEventRow, AlertRow, DeliveryStatRow, OutboxRow, ParkedTransitionRow, SilenceRow
from stream.clock import aware, utc, utcnow

log = logging.getLogger(__name__)
DELIVER_KINDS = ("firing", "severity_changed", "resolved")
# A notification still failing a day after it was queued (or retried) is parked: a day rides out a
# relay's or a chat service's outage overnight, while later a "firing" notice is history and holding
# the alert's later notices (its resolution) behind it does more harm than good. A time, not a number
# of attempts: it means the same to on-call whatever SQM_DELIVERY_BACKOFF_MAX_S is.
PARK_AFTER_S = 24 * 3600.0
Item = dict[str, Any] | bytes
ENDED_UNHELD = ("ended: the alert engine does not hold this alert any more (a new broker without its alert "
                "state, a rule deleted while no worker ran, or a transition that was lost)")


def decode_transition(item: Item) -> dict[str, Any]:
    """A transition as a dict: a message of the alerts topic is decoded (JSON object)."""
    t = orjson.loads(item) if isinstance(item, bytes) else item
    if not isinstance(t, dict):
        raise ValueError(f"not a JSON object: {type(t).__name__}")
    return t


def repeat_key(alert_id: str, reason: str, anchor: datetime, every_s: float, now: datetime) -> str:
    """The dedupe key of a repeat (or a late first notice) of alert `alert_id`: the number of whole
    intervals `every_s` from `anchor` (when the alert fired) to `now`. Deterministic, so two notifiers
    deciding on the same repeat a little apart (or one after a restart) queue it once; a repeat is
    only due `every_s` after the last notice, so each due repeat gets a number of its own.

    >>> from datetime import UTC
    >>> t = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    >>> repeat_key("a1", "repeat", t, 600, t + timedelta(seconds=601))
    'a1/repeat/600s/1'
    >>> repeat_key("a1", "repeat", t, 600, t + timedelta(seconds=1199))
    'a1/repeat/600s/1'
    """
    n = max(0, (aware(now) - aware(anchor)) // timedelta(seconds=every_s))
    return f"{alert_id}/{reason}/{every_s:g}s/{n}"


_REFUSED_LOGGED: set[str] = set()  # silences with a refused matcher, logged once per process


def _silences(s: Session, now: datetime) -> Silences:
    """The active silences (as `alerts.history.active_silences`), each matcher read back as stored
    data: a regular expression stored before `alerts.routing.regex_problem` refused it silences
    nothing (and is logged) instead of failing every transition and every schedule."""
    rows = s.scalars(select(SilenceRow).where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now,
                                              SilenceRow.expired.is_(False)))
    out: Silences = []
    for r in rows:
        matchers = [Matcher.model_validate(m, context={"stored": True}) for m in r.matchers]
        for m in matchers:
            if m.refused and r.id not in _REFUSED_LOGGED:
                _REFUSED_LOGGED.add(r.id)
                log.warning("silence %s silences nothing: its matcher %s%s%r is refused (%s)", r.id, m.name, m.op,
                            m.value, m.refused)
        out.append((r.id, matchers))
    return out


def refusal(error: BaseException) -> str:
    """Why a transition was not stored, on one line (the driver's message, without the SQL)."""
    err = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return one_line(f"{type(err).__name__}: {err}", 500)


class Notifier:
    def __init__(self, engine: Engine, config: NotifyConfig, *, base_url: str, owner: str | None = None,
                 lease_s: float = 30.0, backoff_max_s: float = 60.0, timeout_s: float = 5.0,
                 park_after_s: float = PARK_AFTER_S) -> None:
        self.engine = engine
        self.config = config
        self.base_url = base_url
        self.owner = owner or uuid.uuid4().hex[:12]
        self.lease_s = lease_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.park_after_s = park_after_s
        self._unrecorded: list[tuple[OutboxRow, Failure | None]] = []  # sent, not yet recorded

    # -- ingest ------------------------------------------------------------------------------
    def ingest(self, transitions: Iterable[Item]) -> int:
        """Record transitions (dicts, or messages of the alerts topic); returns how many were new.
        One the database refuses is parked with the reason; an unavailable database raises."""
        new = 0
        refused: list[tuple[Item, str]] = []
        with Session(self.engine) as s, s.begin():
            for item in transitions:
                try:
                    item = decode_transition(item)
                    with s.begin_nested():  # flushed when it ends: a refused row raises here
                        stored = self._ingest_one(s, item)
                    new += stored
                except Exception as exc:
                    if unavailable(exc):
                        raise
                    if isinstance(exc, IntegrityError) and self._known(s, item):
                        continue  # another notifier stored it meanwhile (a rebalance replay)
                    refused.append((item, refusal(exc)))
            for item, why in refused:
                try:
                    with s.begin_nested():
                        self._park_transition(s, item, why)
                except Exception as exc:
                    if unavailable(exc):
                        raise
                    log.error("a refused transition could not be parked either (%s): %s", why, refusal(exc))
        return new

    @staticmethod
    def _known(s: Session, item: Item) -> bool:
        event_id = item.get("event_id") if isinstance(item, dict) else None
        return isinstance(event_id, str) and s.scalar(
            select(AlertEventRow.id).where(AlertEventRow.event_id == event_id)) is not None

    @staticmethod
    def _park_transition(s: Session, item: Item, why: str) -> None:
        try:
            text = orjson.dumps(item).decode() if isinstance(item, dict) else item.decode("utf-8", "backslashreplace")
        except (TypeError, orjson.JSONEncodeError):
            text = repr(item)
        text = text.replace("\x00", "\\u0000")[:20000]  # JSON escapes NUL already; a raw message may not
        t = item if isinstance(item, dict) else {}
        event_id, alert_id = t.get("event_id"), t.get("alert_id")
        key = one_line(event_id, 200) if isinstance(event_id, str) and event_id.strip() else \
            "sha1:" + hashlib.sha1(text.encode()).hexdigest()
        alert = one_line(alert_id, 200) if alert_id is not None else None
        if s.scalar(select(ParkedTransitionRow.id).where(ParkedTransitionRow.key == key)) is not None:
            return  # parked before (a replay of the batch)
        log.error("transition %s of alert %s parked, not stored: %s", key, alert, why)
        s.add(ParkedTransitionRow(key=key, alert_id=alert, reason=why, transition=text, received_at=utcnow()))

    def _ingest_one(self, s: Session, t: dict[str, Any]) -> int:
        if not is_transition(t):
            if t.get("kind") == "census":
                return self._census(s, t)
            apply_live(s, t)
            return 0
        a = apply_transition(s, t)
        if a is None:
            return 0  # a replayed transition
        ts = utc(t["ts"])
        detail: dict[str, Any] = {"previous_severity": t.get("previous_severity")}
        if t["kind"] in DELIVER_KINDS:
            detail.update(self._route(s, a, t["kind"], t["event_id"], ts))
        s.flush()
        append_event(s, a, event_id=t["event_id"], kind=t["kind"], ts=ts, detail=detail)
        return 1

    def _census(self, s: Session, census: dict[str, Any]) -> int:
        """End the alerts of the census's partition that the engine does not hold."""
        now = utcnow()
        ended = 0
        for a in unheld(s, census):
            kind = end_alert(s, a, reason=ENDED_UNHELD, now=now)
            key = f"{a.id}/ended"
            detail: dict[str, Any] = {"reason": ENDED_UNHELD, "census_ts": census["ts"]}
            if kind == "resolved":
                detail.update(self._route(s, a, "resolved", key, now))
            s.flush()
            append_event(s, a, event_id=key, kind="ended", ts=now, detail=detail)
            log.warning("alert %s (%s on %s) ended: not held by the alert engine", a.id, a.rule_id, a.scope)
            ended += 1
        return ended

    def _route(self, s: Session, a: AlertRow, kind: str, key: str, now: datetime) -> dict[str, Any]:
        labels = labels_of(a)
        if kind == "resolved":
            # everyone who heard of the alert hears of its end (silenced or not)
            targets = set(s.scalars(select(OutboxRow.target).where(OutboxRow.alert_id == a.id).distinct()))
            self._enqueue(s, a, targets, kind, key, now)
            return {"targets": sorted(targets)}
        silence = silence_for(_silences(s, now), labels)
        a.silenced_by = silence
        if silence is not None:
            return {"silenced_by": silence, "targets": []}
        targets = {n for r in self.config.routes_for(labels) for n in r.targets}
        self._enqueue(s, a, targets, kind, key, now)
        return {"targets": sorted(targets)}

    def _enqueue(self, s: Session, a: AlertRow, targets: Iterable[str], reason: str, key: str,
                 now: datetime, *, racing: bool = False) -> int:
        """Queue one row per target unless (key, target) is queued already; returns how many were.
        `racing`: another notifier may insert the same row meanwhile (schedule): each insert in a
        savepoint, a conflicting one dropped."""
        body = payload(a)
        n = 0
        for name in sorted(targets):
            if s.scalar(select(OutboxRow.id).where(OutboxRow.dedupe_key == key, OutboxRow.target == name)):
                continue
            row = OutboxRow(dedupe_key=key, alert_id=a.id, target=name, reason=reason, payload=body,
                            created_at=now, next_at=now, attempts=0)
            if not racing:
                s.add(row)
                n += 1
                continue
            try:
                with s.begin_nested():
                    s.add(row)
            except IntegrityError:  # queued by another notifier since we looked: it goes out once
                log.debug("%s to %s: queued by another notifier", key, name)
                continue
            n += 1
        return n

    # -- repeats and escalation ----------------------------------------------------------------
    def schedule(self, now_ts: float) -> int:
        now = utc(now_ts)
        queued = 0
        with Session(self.engine) as s, s.begin():
            silences = _silences(s, now)
            firing = list(s.scalars(select(AlertRow).where(AlertRow.state == "firing")))
            # one query for every firing alert: when each target was last told of it
            last: dict[str, dict[str, datetime]] = {}
            if firing:
                told = (select(OutboxRow.alert_id, OutboxRow.target, func.max(OutboxRow.created_at))
                        .join(AlertRow, AlertRow.id == OutboxRow.alert_id).where(AlertRow.state == "firing")
                        .group_by(OutboxRow.alert_id, OutboxRow.target))
                for alert_id, target, at in s.execute(told).tuples():
                    last.setdefault(alert_id, {})[target] = at
            for a in firing:
                labels = labels_of(a)
                routes = self.config.routes_for(labels)
                silence = silence_for(silences, labels)
                if silence != a.silenced_by:
                    a.silenced_by = silence
                if silence is not None:
                    continue
                queued += self._repeats(s, a, routes, now, last.get(a.id, {}))
                queued += self._escalate(s, a, routes, now)
        return queued

    def _repeats(self, s: Session, a: AlertRow, routes: list[Route], now: datetime,
                 last: dict[str, datetime]) -> int:
        n = 0
        for r in routes:
            names = list(r.targets) + [t for i, lv in enumerate(r.escalation) if i < a.escalation_level
                                       for t in lv.targets]
            for name in names:
                target = self.config.target(name)
                if target is None:
                    continue
                every = min(r.repeat_interval_s, target.repeat_cap_s or r.repeat_interval_s)
                prev = last.get(name)
                if prev is None:
                    reason = "firing"  # never told (silenced when it fired, or a route added since)
                elif now - aware(prev) >= timedelta(seconds=every):
                    reason = "repeat"
                else:
                    continue
                key = repeat_key(a.id, reason, a.firing_at or a.pending_at, every, now)
                n += self._enqueue(s, a, [name], reason, key, now, racing=True)
                last[name] = now
        return n

    def _escalate(self, s: Session, a: AlertRow, routes: list[Route], now: datetime) -> int:
        if a.severity != "critical" or a.acked_at is not None or a.critical_at is None:
            return 0
        waited = (now - aware(a.critical_at)).total_seconds()
        n = 0
        for r in routes:
            for i, lv in enumerate(r.escalation):
                if i >= a.escalation_level and waited >= lv.after_s:
                    key = f"{a.id}/escalation/{i + 1}/{int(a.critical_at.timestamp())}"
                    try:
                        with s.begin_nested():
                            self._enqueue(s, a, lv.targets, "escalation", key, now)
                            a.escalation_level = i + 1
                            append_event(s, a, event_id=key, kind="escalated", ts=now,
                                         detail={"level": i + 1, "targets": lv.targets, "after_s": lv.after_s})
                    except IntegrityError:  # another notifier escalated it (its history row is there)
                        log.debug("escalation %s: done by another notifier", key)
                        continue
                    n += 1
        return n

    # -- retention -----------------------------------------------------------------------------
    def purge(self, now_ts: float, keep_s: float, batch: int = 2000) -> int:
        """Delete alerts that ended (resolved, or cancelled while pending) more than `keep_s` ago,
        with their history and their delivered or parked notifications, and silences and parked
        transitions older than that. An alert with a notification still to deliver is kept. Returns
        the number of alerts deleted (at most `batch`: call again while it returns `batch`)."""
        cutoff = utc(now_ts - keep_s)
        with Session(self.engine) as s, s.begin():
            undelivered = select(OutboxRow.alert_id).where(OutboxRow.delivered_at.is_(None),
                                                           OutboxRow.parked_at.is_(None))
            old = list(s.scalars(select(AlertRow.id).where(
                AlertRow.state.in_(("resolved", "inactive")), AlertRow.updated_at < cutoff,
                AlertRow.id.not_in(undelivered)).limit(batch)))
            if old:
                s.execute(delete(OutboxRow).where(OutboxRow.alert_id.in_(old)))
                s.execute(delete(AlertEventRow).where(AlertEventRow.alert_id.in_(old)))
                s.execute(delete(AlertRow).where(AlertRow.id.in_(old)))
            s.execute(delete(SilenceRow).where(SilenceRow.ends_at < cutoff))
            s.execute(delete(ParkedTransitionRow).where(ParkedTransitionRow.received_at < cutoff))
        return len(old)

    # -- delivery ------------------------------------------------------------------------------
    def claim(self, now_ts: float, limit: int = 100) -> list[OutboxRow]:
        now = utc(now_ts)
        earlier = aliased(OutboxRow)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            # rows for a target no longer in the notify file are held, not failed: they are
            # delivered if it comes back (see `held`)
            due = select(OutboxRow.id).where(
                OutboxRow.delivered_at.is_(None), OutboxRow.parked_at.is_(None), OutboxRow.next_at <= now,
                OutboxRow.target.in_([t.name for t in self.config.targets]),
                (OutboxRow.lease_until.is_(None)) | (OutboxRow.lease_until < now),
                ~exists().where(and_(earlier.alert_id == OutboxRow.alert_id, earlier.target == OutboxRow.target,
                                     earlier.delivered_at.is_(None), earlier.parked_at.is_(None),
                                     earlier.id < OutboxRow.id)),
            ).order_by(OutboxRow.id).limit(limit)
            ids = list(s.scalars(due))
            if not ids:
                return []
            until = now + timedelta(seconds=self.lease_s)
            # the lease condition again: of two notifiers racing for a row, one updates it
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(ids), (OutboxRow.lease_until.is_(None))
                                              | (OutboxRow.lease_until < now))
                      .values(lease_owner=self.owner, lease_until=until))
            return list(s.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids), OutboxRow.lease_owner == self.owner,
                                                          OutboxRow.lease_until == until)))

    def held(self) -> dict[str, int]:
        """Undelivered notifications per target that is no longer configured: kept, never attempted."""
        with Session(self.engine) as s:
            return dict(s.execute(
                select(OutboxRow.target, func.count())
                .where(OutboxRow.delivered_at.is_(None), OutboxRow.parked_at.is_(None),
                       OutboxRow.target.not_in([t.name for t in self.config.targets]))
                .group_by(OutboxRow.target)).tuples().all())

    async def deliver(self, client: httpx.AsyncClient, now_ts: float) -> int:
        """One round: claim, send, record. Returns how many were delivered. Raises if the database
        fails; what was sent by then is recorded first in the next round (no second send)."""
        if self._unrecorded:
            await asyncio.to_thread(self._finish, self._unrecorded, now_ts)
            self._unrecorded = []
        rows = await asyncio.to_thread(self.claim, now_ts)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._send(client, r, now_ts) for r in rows))
        self._unrecorded = list(zip(rows, results, strict=True))
        await asyncio.to_thread(self._finish, self._unrecorded, now_ts)
        self._unrecorded = []
        return sum(1 for e in results if e is None)

    async def _send(self, client: httpx.AsyncClient, row: OutboxRow, now: float) -> Failure | None:
        target = self.config.target(row.target)
        assert target is not None, "claim() only returns rows of configured targets"
        try:
            await send(target, row.payload, row.reason, client=client, base_url=self.base_url,
                       timeout=self.timeout_s, now=now, idempotency_key=idempotency_key(row.dedupe_key, row.target))
            return None
        except Exception as exc:
            return classify(exc)

    def _parking(self, row: OutboxRow, failure: Failure, now: datetime) -> str | None:
        """The reason to park `row` after `failure`, or None to try it again later."""
        if failure.permanent:
            return stored_error(failure.reason)
        since = aware(row.retried_at or row.created_at)
        if (now - since).total_seconds() >= self.park_after_s:
            return stored_error(f"still failing {self.park_after_s / 3600:g} h after it was queued: {failure.reason}")
        return None

    def _finish(self, done: list[tuple[OutboxRow, Failure | None]], now_ts: float) -> None:
        """Record the results of a round. A row is updated only while it holds the lease this notifier
        claimed it with (owner and expiry): one whose lease expired and was claimed by another
        notifier is that one's to record (it may be delivered, or failing on its own clock). The
        attempt is counted in the target's figures either way: it was made."""
        now = utc(now_ts)
        with Session(self.engine) as s, s.begin():
            for row, failure in done:
                stat = s.get(DeliveryStatRow, row.target) or DeliveryStatRow(target=row.target, attempts=0,
                                                                             failures=0, delivered=0)
                s.add(stat)
                stat.attempts += 1
                values: dict[str, Any] = {"attempts": row.attempts + 1, "lease_owner": None, "lease_until": None}
                if failure is None:
                    stat.delivered += 1
                    values.update(delivered_at=now, last_error=None)
                elif why := self._parking(row, failure, now):
                    stat.failures += 1
                    values.update(parked_at=now, last_error=why)
                    log.error("delivery %d (%s of alert %s) to %s parked after attempt %d: %s", row.id, row.reason,
                              row.alert_id, row.target, row.attempts + 1, why)
                else:
                    stat.failures += 1
                    values.update(last_error=stored_error(failure.reason),
                                  next_at=now + backoff(row.attempts + 1, self.backoff_max_s))
                    log.warning("delivery %d to %s failed (attempt %d): %s", row.id, row.target,
                                row.attempts + 1, failure.reason)
                held = s.execute(update(OutboxRow).where(OutboxRow.id == row.id, OutboxRow.lease_owner == self.owner,
                                                         OutboxRow.lease_until == row.lease_until).values(**values))
                if held.rowcount == 0:  # type: ignore[attr-defined]
                    log.warning("delivery %d to %s: the lease was lost (taken by another notifier after %g s); "
                                "its state is left to that one (%s here)", row.id, row.target, self.lease_s,
                                "delivered" if failure is None else failure.reason)
