"""KPI accumulators: the sufficient statistics of every windowed KPI, as mergeable folds. No I/O.

One `Acc` holds the counters of one (scope, time bucket). A window is the merge of its buckets, and
the view of several partitions is the merge of their accumulators, so `merge` must be associative
and commutative (property-tested). `Acc` is mutable on purpose: `add` runs once per event per
scope on the hot path, and building a new object each time would dominate the cost.

    >>> a = Acc(); fold(a, some_event, KpiConfig())   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from stream.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    Event,
    SurveySubmitted,
    TicketCreated,
    TicketFirstResponse,
    TicketReopened,
    TicketResolved,
)
from stream.sketch import Sketch

COMPLAINT_RESOLUTION_S = 86400.0


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """Targets that decide how an event is counted (applied at ingest, so changes affect new events)."""

    fr_targets: dict[str, float] = field(default_factory=lambda: {"vip": 1800.0})
    fr_default_target: float = 14400.0
    sl_thresholds: dict[str, float] = field(default_factory=dict)  # per queue
    sl_default_threshold: float = 20.0
    short_abandon: dict[str, float] = field(default_factory=dict)  # per queue
    short_abandon_default: float = 5.0

    def fr_target(self, tier: str) -> float:
        return self.fr_targets.get(tier, self.fr_default_target)

    def sl_threshold(self, queue: str) -> float:
        return self.sl_thresholds.get(queue, self.sl_default_threshold)

    def short_abandon_s(self, queue: str) -> float:
        return self.short_abandon.get(queue, self.short_abandon_default)


@dataclass(slots=True)
class Acc:
    # tickets
    created: int = 0
    complaints: int = 0
    fr_n: int = 0
    fr_sum: float = 0.0
    fr_sla: int = 0
    fr_sketch: Sketch = field(default_factory=Sketch)
    res_n: int = 0
    res_sum: float = 0.0
    res_sketch: Sketch = field(default_factory=Sketch)
    res_one_contact: int = 0
    res_bot: int = 0
    res_complaint: int = 0
    res_complaint_24h: int = 0
    reopened: int = 0
    # calls
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    wait_sum: float = 0.0
    abandoned: int = 0
    abandoned_long: int = 0
    ended: int = 0
    ended_resolved: int = 0
    handle_sum: float = 0.0
    # surveys
    surveys: int = 0
    csat_n: int = 0
    csat_ok: int = 0
    nps_n: int = 0
    promoters: int = 0
    detractors: int = 0
    ces_n: int = 0
    ces_sum: float = 0.0

    def merge(self, other: Acc) -> Acc:
        """Add `other` into self (in place) and return self."""
        for name in _NUMERIC:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fr_sketch.merge(other.fr_sketch)
        self.res_sketch.merge(other.res_sketch)
        return self

    def copy(self) -> Acc:
        return Acc().merge(self)

    def to_json(self) -> dict[str, Any]:
        """Non-zero fields only: most buckets touch one event family."""
        out: dict[str, Any] = {n: v for n in _NUMERIC if (v := getattr(self, n))}
        if self.fr_sketch.count:
            out["fr_sketch"] = self.fr_sketch.to_json()
        if self.res_sketch.count:
            out["res_sketch"] = self.res_sketch.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Acc:
        acc = cls(**{k: v for k, v in data.items() if k in _NUMERIC_SET})
        if "fr_sketch" in data:
            acc.fr_sketch = Sketch.from_json(data["fr_sketch"])
        if "res_sketch" in data:
            acc.res_sketch = Sketch.from_json(data["res_sketch"])
        return acc


_NUMERIC = tuple(f.name for f in fields(Acc) if not f.name.endswith("_sketch"))
_NUMERIC_SET = frozenset(_NUMERIC)


def fold(acc: Acc, ev: Event, cfg: KpiConfig) -> None:
    """Count one event into `acc` following kpis.md."""
    if isinstance(ev, TicketCreated):
        acc.created += 1
        acc.complaints += ev.is_complaint
    elif isinstance(ev, TicketFirstResponse):
        d = ev.duration_s
        acc.fr_n += 1
        acc.fr_sum += d
        acc.fr_sla += d <= cfg.fr_target(ev.customer_tier)
        acc.fr_sketch.add(d)
    elif isinstance(ev, TicketResolved):
        d = ev.duration_s
        acc.res_n += 1
        acc.res_sum += d
        acc.res_sketch.add(d)
        acc.res_one_contact += ev.contacts == 1
        acc.res_bot += ev.by_bot
        if ev.is_complaint:
            acc.res_complaint += 1
            acc.res_complaint_24h += d <= COMPLAINT_RESOLUTION_S
    elif isinstance(ev, TicketReopened):
        acc.reopened += 1
    elif isinstance(ev, CallOffered):
        acc.offered += 1
    elif isinstance(ev, CallAnswered):
        acc.answered += 1
        acc.wait_sum += ev.wait_s
        acc.answered_in_sl += ev.wait_s <= cfg.sl_threshold(ev.queue)
    elif isinstance(ev, CallAbandoned):
        acc.abandoned += 1
        acc.abandoned_long += ev.wait_s > cfg.short_abandon_s(ev.queue)
    elif isinstance(ev, CallEnded):
        acc.ended += 1
        acc.ended_resolved += ev.resolved
        acc.handle_sum += ev.talk_s + ev.hold_s + ev.wrap_s
    elif isinstance(ev, SurveySubmitted):
        acc.surveys += 1
        if ev.csat is not None:
            acc.csat_n += 1
            acc.csat_ok += ev.csat >= 4
        if ev.nps is not None:
            acc.nps_n += 1
            acc.promoters += ev.nps >= 9
            acc.detractors += ev.nps <= 6
        if ev.ces is not None:
            acc.ces_n += 1
            acc.ces_sum += ev.ces
