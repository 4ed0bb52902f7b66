"""KPI accumulators: the sufficient statistics of every windowed KPI, as mergeable folds. No I/O.

One `Acc` holds the counters of one (scope, time bucket). A window is the merge of its buckets, and
the view of several partitions is the merge of their accumulators, so `merge` must be associative
and commutative (property-tested).

Hot path: an event counts in five or six scopes. `contribution(ev, cfg)` works out once what the
event adds (a few (counter, increment) pairs and at most one duration for a sketch), and
`Acc.add` applies that to each scope's accumulator. Counters live in one list, so adding is an
index update rather than attribute lookups; `acc.created` and friends still read by name.

    >>> a, b = Acc(), Acc()
    >>> a.v[IX["created"]], b.v[IX["created"]] = 2.0, 3.0
    >>> a.merge(b).created     # the accumulators of two buckets, or two partitions, of one scope
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.caps import DEFAULT_CAPS
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
from stream.voice import Voice, default_analyser

COMPLAINT_RESOLUTION_S = 86400.0

FIELDS_OF = {  # the counters of an accumulator, by the source topic whose events feed them
    "tickets": ("created", "complaints", "fr_n", "fr_sum", "fr_sla", "res_n", "res_sum", "res_one_contact", "res_bot",
                "res_complaint", "res_complaint_24h", "reopened"),
    "calls": ("offered", "answered", "answered_in_sl", "wait_sum", "abandoned", "abandoned_long", "ended",
              "ended_resolved", "handle_sum"),
    # the comments' counters follow voice.md: nn = negative and neutral (the topics' denominator); the
    # sentiment is summed as its positive and its negative part, so that every counter only grows
    "surveys": ("surveys", "csat_n", "csat_ok", "nps_n", "promoters", "detractors", "ces_n", "ces_sum",
                "comments", "comments_negative", "comments_nn", "sentiment_pos", "sentiment_neg",
                "comments_mismatch"),
    # seconds agents spent in each state (stream/agents.py TIME_FIELD), booked when the state ends; the
    # state an agent is in now is added by the view up to the request time (workforce.md)
    "agents": ("t_available", "t_on_contact", "t_acw", "t_away"),
}
FIELDS = tuple(f for fields in FIELDS_OF.values() for f in fields)
IX = {name: i for i, name in enumerate(FIELDS)}
_N = len(FIELDS)


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """Targets that decide how an event is counted (applied at ingest, so changes affect new events)."""

    fr_targets: dict[str, float] = field(default_factory=lambda: {"vip": 1800.0})
    fr_default_target: float = 14400.0
    sl_thresholds: dict[str, float] = field(default_factory=dict)  # per queue
    sl_default_threshold: float = 20.0
    short_abandon: dict[str, float] = field(default_factory=dict)  # per queue
    short_abandon_default: float = 5.0
    call_horizon_s: float = 4 * 3600.0  # a call offered longer ago and never closed leaves the live state
    # distinct values kept per dimension and source partition (stream/caps.py); the rest count as `other`
    scope_caps: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    # keep the monotonic KPI totals (records.TotalValue) of agent scopes too: one record per agent and
    # source topic, kept for good, so only while /metrics serves agent series (SQM_METRICS_AGENT_SCOPES not 0)
    agent_totals: bool = False
    # a vendor's agent state names -> the contract's five (events.validate)
    agent_state_map: dict[str, str] = field(default_factory=dict)
    agent_horizon_s: float = 12 * 3600.0  # an agent with no event for this long leaves the live state
    # live tickets and calls kept per source partition: a flood of made-up ids evicts the oldest (counted)
    max_live_tickets: int = 500_000
    max_live_calls: int = 100_000

    def fr_target(self, tier: str) -> float:
        return self.fr_targets.get(tier, self.fr_default_target)

    def sl_threshold(self, queue: str) -> float:
        return self.sl_thresholds.get(queue, self.sl_default_threshold)

    def short_abandon_s(self, queue: str) -> float:
        return self.short_abandon.get(queue, self.short_abandon_default)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one event adds to an accumulator: counter increments, and a duration for a sketch."""

    incs: tuple[tuple[int, float], ...]
    fr: float | None = None
    res: float | None = None


class Acc:
    __slots__ = ("v", "fr_sketch", "res_sketch")

    def __init__(self, v: list[float] | None = None, fr: Sketch | None = None, res: Sketch | None = None) -> None:
        self.v: list[float] = v if v is not None else [0] * _N
        self.fr_sketch = fr if fr is not None else Sketch()
        self.res_sketch = res if res is not None else Sketch()

    def __getattr__(self, name: str) -> Any:
        # only reached for counter names (slots are found first): `acc.created`
        try:
            return self.v[IX[name]]
        except KeyError:
            raise AttributeError(name) from None

    def add(self, c: Contribution) -> None:
        v = self.v
        for i, inc in c.incs:
            v[i] += inc
        if c.fr is not None:
            self.fr_sketch.add(c.fr)
        if c.res is not None:
            self.res_sketch.add(c.res)

    def merge(self, other: Acc) -> Acc:
        """Add `other` into self (in place) and return self."""
        v = self.v
        for i, x in enumerate(other.v):
            if x:
                v[i] += x
        self.fr_sketch.merge(other.fr_sketch)
        self.res_sketch.merge(other.res_sketch)
        return self

    def to_json(self) -> dict[str, Any]:
        """Non-zero counters only: most buckets see one event family."""
        out: dict[str, Any] = {n: x for n, x in zip(FIELDS, self.v, strict=True) if x}
        if self.fr_sketch.count:
            out["fr_sketch"] = self.fr_sketch.to_json()
        if self.res_sketch.count:
            out["res_sketch"] = self.res_sketch.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Acc:
        v: list[float] = [0] * _N
        for k, x in data.items():
            i = IX.get(k)
            if i is not None:
                v[i] = x
        fr = Sketch.from_json(data["fr_sketch"]) if "fr_sketch" in data else None
        res = Sketch.from_json(data["res_sketch"]) if "res_sketch" in data else None
        return cls(v, fr, res)


_I = IX


def contribution(ev: Event, cfg: KpiConfig, voice: Voice | None = None) -> Contribution:
    """What `ev` adds to the accumulator of every scope it counts in, following kpis.md; for a survey
    with a comment, what `voice` (its reading, stream/voice.py) adds, following voice.md."""
    if isinstance(ev, TicketCreated):
        return Contribution(((_I["created"], 1), (_I["complaints"], int(ev.is_complaint))))
    if isinstance(ev, TicketFirstResponse):
        d = ev.duration_s
        return Contribution(((_I["fr_n"], 1), (_I["fr_sum"], d),
                             (_I["fr_sla"], int(d <= cfg.fr_target(ev.customer_tier)))), fr=d)
    if isinstance(ev, TicketResolved):
        d = ev.duration_s
        incs = [(_I["res_n"], 1), (_I["res_sum"], d), (_I["res_one_contact"], int(ev.contacts == 1)),
                (_I["res_bot"], int(ev.by_bot))]
        if ev.is_complaint:
            incs += [(_I["res_complaint"], 1), (_I["res_complaint_24h"], int(d <= COMPLAINT_RESOLUTION_S))]
        return Contribution(tuple(incs), res=d)
    if isinstance(ev, TicketReopened):
        return Contribution(((_I["reopened"], 1),))
    if isinstance(ev, CallOffered):
        return Contribution(((_I["offered"], 1),))
    if isinstance(ev, CallAnswered):
        return Contribution(((_I["answered"], 1), (_I["wait_sum"], ev.wait_s),
                             (_I["answered_in_sl"], int(ev.wait_s <= cfg.sl_threshold(ev.queue)))))
    if isinstance(ev, CallAbandoned):
        return Contribution(((_I["abandoned"], 1),
                             (_I["abandoned_long"], int(ev.wait_s > cfg.short_abandon_s(ev.queue)))))
    if isinstance(ev, CallEnded):
        return Contribution(((_I["ended"], 1), (_I["ended_resolved"], int(ev.resolved)),
                             (_I["handle_sum"], ev.talk_s + ev.hold_s + ev.wrap_s)))
    assert isinstance(ev, SurveySubmitted)
    incs = [(_I["surveys"], 1)]
    if ev.csat is not None:
        incs += [(_I["csat_n"], 1), (_I["csat_ok"], int(ev.csat >= 4))]
    if ev.nps is not None:
        incs += [(_I["nps_n"], 1), (_I["promoters"], int(ev.nps >= 9)), (_I["detractors"], int(ev.nps <= 6))]
    if ev.ces is not None:
        incs += [(_I["ces_n"], 1), (_I["ces_sum"], ev.ces)]
    if voice is not None:
        incs += [(_I["comments"], 1), (_I["comments_negative"], int(voice.label == "negative")),
                 (_I["comments_nn"], int(voice.label != "positive")),
                 (_I["sentiment_pos"] if voice.sentiment > 0 else _I["sentiment_neg"], abs(voice.sentiment)),
                 (_I["comments_mismatch"], int(voice.mismatch))]
    return Contribution(tuple(incs))


def voice_of(ev: Event) -> Voice | None:
    """A survey's comment read by the default analyser (stream/voice.py); None for other events."""
    if not isinstance(ev, SurveySubmitted) or ev.comment is None:
        return None
    return default_analyser().analyse(ev.comment, language=ev.language, csat=ev.csat, nps=ev.nps)


def fold(acc: Acc, ev: Event, cfg: KpiConfig) -> None:
    """Count one event into `acc` (convenience for a single accumulator)."""
    acc.add(contribution(ev, cfg, voice_of(ev)))
