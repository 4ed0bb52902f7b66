"""The database schema (SQLAlchemy 2 models; SQLite or PostgreSQL): rules, alerts and their history,
silences, the delivery outbox, parked transitions, KPI targets, API keys and the KPI history.

Migrations are Alembic's (`db/migrations`), applied by `db.engine.connect` at the start of every
process that uses the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class RuleRow(Base):
    """Rules created over the API (rules of the rule file are not stored: the file is their source)."""

    __tablename__ = "rules"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    doc: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(200))


class AlertRow(Base):
    """One alert: (rule, scope) from pending to resolved. Its current state; history in AlertEventRow."""

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    scope: Mapped[str] = mapped_column(String(200), index=True)
    kpi: Mapped[str] = mapped_column(String(64))
    window: Mapped[str] = mapped_column(String(8))
    op: Mapped[str] = mapped_column(String(2))
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, firing, resolved, inactive
    severity: Mapped[str | None] = mapped_column(String(16), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=0)
    threshold: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[dict[str, Any]]
    summary: Mapped[str] = mapped_column(Text, default="")
    intervention: Mapped[str] = mapped_column(Text, default="")
    runbook_url: Mapped[str | None] = mapped_column(Text)
    pending_at: Mapped[datetime]
    firing_at: Mapped[datetime | None]
    critical_at: Mapped[datetime | None]  # when it last became critical (escalation clock)
    resolved_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    acked_at: Mapped[datetime | None]
    ack_note: Mapped[str | None] = mapped_column(Text)
    silenced_by: Mapped[str | None] = mapped_column(String(40))  # silence id at the last delivery decision
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # summary and intervention in other languages, rendered: {"zh-CN": {"summary": ..., "intervention": ...}}
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the rule's KPI on the scope and window as the alert engine last sent it (for repeat notices;
    # the API serves its own, computed from the view)
    live_value: Mapped[float | None] = mapped_column(Float)
    live_count: Mapped[int | None] = mapped_column(Integer)
    live_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(Text)  # an alert ended other than by its KPI: why


class AlertEventRow(Base):
    """The history: every transition (and every acknowledgement) of every alert."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(80), unique=True)
    alert_id: Mapped[str] = mapped_column(String(40), ForeignKey("alerts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=0)
    threshold: Mapped[float | None] = mapped_column(Float)
    window: Mapped[str] = mapped_column(String(8))
    scope: Mapped[str] = mapped_column(String(200))
    rule_id: Mapped[str] = mapped_column(String(100))
    ts: Mapped[datetime] = mapped_column(index=True)
    detail: Mapped[dict[str, Any]]  # who / note for acks, silence id, delivery decision


class SilenceRow(Base):
    __tablename__ = "silences"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    matchers: Mapped[list[Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expired: Mapped[bool] = mapped_column(Boolean, default=False)  # ended early by DELETE


class OutboxRow(Base):
    """One notification for one target. Delivered at least once; retried with backoff until then, or
    parked (`parked_at`, the reason in `last_error`) when it fails permanently or for too long: a
    parked row is not retried until an admin asks (`retried_at`), and never holds up the alert's
    later notifications."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("dedupe_key", "target", name="uq_outbox_dedupe_target"),
                      Index("ix_outbox_due", "delivered_at", "next_at"), Index("ix_outbox_parked", "parked_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(120))  # transition event id, or alert/repeat/n ...
    alert_id: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(24))  # firing, severity_changed, resolved, repeat, escalation
    payload: Mapped[dict[str, Any]]  # the alert as of the notification (formatted per target at delivery)
    created_at: Mapped[datetime]
    next_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None]
    retried_at: Mapped[datetime | None]  # the last retry an admin asked for: the give-up clock starts again


class ParkedTransitionRow(Base):
    """A transition read from the alerts topic that could not be stored (bad data the database
    refuses, a malformed message): kept here with the reason instead of blocking the topic."""

    __tablename__ = "parked_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # the event id, else a hash of the message
    alert_id: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    transition: Mapped[str] = mapped_column(Text)  # the message as JSON text (NUL as \u0000)
    received_at: Mapped[datetime] = mapped_column(index=True)


class DeliveryStatRow(Base):
    """Counters per target (for /metrics): they survive notifier restarts."""

    __tablename__ = "delivery_stats"
    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)


RESPONSE_BUCKETS = 10  # alerts.history.RESPONSE_BUCKETS_S: the upper bounds of b0..b9


class AlertTimingRow(Base):
    """Time to acknowledge and time to resolve per rule, as a Prometheus histogram: `count` and
    `sum_s` of every observation, `b<i>` those within the i-th bound (not cumulative). Incremented
    in place (`b3 = b3 + 1`), so concurrent writers never lose one; counters survive restarts and
    the retention of the alerts they came from."""

    __tablename__ = "alert_timing"
    rule_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)  # ack, resolve
    count: Mapped[int] = mapped_column(Integer, default=0)
    sum_s: Mapped[float] = mapped_column(Float, default=0.0)
    b0: Mapped[int] = mapped_column(Integer, default=0)
    b1: Mapped[int] = mapped_column(Integer, default=0)
    b2: Mapped[int] = mapped_column(Integer, default=0)
    b3: Mapped[int] = mapped_column(Integer, default=0)
    b4: Mapped[int] = mapped_column(Integer, default=0)
    b5: Mapped[int] = mapped_column(Integer, default=0)
    b6: Mapped[int] = mapped_column(Integer, default=0)
    b7: Mapped[int] = mapped_column(Integer, default=0)
    b8: Mapped[int] = mapped_column(Integer, default=0)
    b9: Mapped[int] = mapped_column(Integer, default=0)


class TargetRow(Base):
    """KPI targets set over the API (targets of the targets file are not stored: the file is their source)."""

    __tablename__ = "kpi_targets"
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)  # a scope, or `kind:*` for every one
    kpi: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(200))


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once, when created."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the key's public prefix
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # read, ingest, admin
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class KpiHistoryRow(Base):
    """KPI accumulators per scope and minute (`m`) or hour (`h`): the history behind comparisons and
    charts. Ratios are computed from merged accumulators, never averaged. `source` is `live` (the
    history writer) or `backfill:<name>` (one backfilled file); a query merges every source."""

    __tablename__ = "kpi_history"
    __table_args__ = (Index("ix_kpi_history_scope_start", "scope", "start"),)
    resolution: Mapped[str] = mapped_column(String(1), primary_key=True)
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    source: Mapped[str] = mapped_column(String(120), primary_key=True)
    acc: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
