"""Live ticket state (kpis.md "Live state"): open tickets and their first-response due times. No I/O.

Only open tickets are kept: a resolved ticket leaves the state, and so does an open one created longer
ago than the horizon. The live KPIs are derived from the open tickets at read time, because
`overdue` and `at_risk` change with the clock, not with events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sortedcontainers import SortedList

from stream.events import TicketCreated, TicketEvent, TicketFirstResponse, TicketReopened, TicketResolved

AT_RISK_SHARE = 0.2  # "will pass their due time within 20 % of their target"


@dataclass(slots=True)
class Ticket:
    team: str
    channel: str
    tier: str
    agent: str | None
    created_at: float
    target_s: float
    responded: bool
    wm: int = -1  # offset of the last event applied (idempotent replay)

    @property
    def due(self) -> float:
        return self.created_at + self.target_s

    def scopes(self) -> list[str]:
        out = ["all", f"team:{self.team}", f"channel:{self.channel}", f"tier:{self.tier}"]
        if self.agent:
            out.append(f"agent:{self.agent}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"o": self.wm, "team": self.team, "channel": self.channel, "tier": self.tier,
                "agent": self.agent, "created_at": self.created_at, "target_s": self.target_s,
                "responded": self.responded}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Ticket:
        return cls(d["team"], d["channel"], d["tier"], d["agent"], float(d["created_at"]),
                   float(d["target_s"]), bool(d["responded"]), int(d["o"]))

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ticket:
        return cls.from_json(orjson.loads(raw))


def transition(current: Ticket | None, ev: TicketEvent, target_s: float) -> Ticket | None:
    """The ticket after `ev`; None means the ticket is no longer open (resolved)."""
    if isinstance(ev, TicketResolved):
        return None
    t = current or Ticket(ev.team, ev.channel, ev.customer_tier, ev.agent, ev.created_at.timestamp(),
                          target_s, responded=not isinstance(ev, TicketCreated))
    if ev.agent is not None:
        t.agent = ev.agent
    if isinstance(ev, TicketFirstResponse | TicketReopened):
        t.responded = True
    return t


@dataclass(slots=True)
class LiveCounts:
    backlog: int = 0
    overdue: int = 0
    at_risk: int = 0
    unanswered: int = 0  # open tickets without a first response
    oldest_unanswered_at: float | None = None  # created_at of the oldest of them

    def oldest_unanswered_s(self, now: float) -> float | None:
        return max(0.0, now - self.oldest_unanswered_at) if self.oldest_unanswered_at is not None else None


def live_counts(tickets: Iterable[Ticket], *, now: float) -> dict[str, LiveCounts]:
    """backlog, first_response_overdue, first_response_at_risk and the oldest unanswered per scope."""
    out: dict[str, LiveCounts] = defaultdict(LiveCounts)
    for t in tickets:
        overdue = at_risk = False
        if not t.responded:
            due = t.due
            overdue = due <= now
            at_risk = not overdue and due - AT_RISK_SHARE * t.target_s <= now
        for s in t.scopes():
            c = out[s]
            c.backlog += 1
            c.overdue += overdue
            c.at_risk += at_risk
            if not t.responded:
                c.unanswered += 1
                if c.oldest_unanswered_at is None or t.created_at < c.oldest_unanswered_at:
                    c.oldest_unanswered_at = t.created_at
    return out


@dataclass(slots=True)
class _ScopeIndex:
    backlog: int = 0
    due: SortedList = field(default_factory=SortedList)  # due times of tickets awaiting a first response
    risk: SortedList = field(default_factory=SortedList)  # the times they become at risk
    created: SortedList = field(default_factory=SortedList)  # created_at of the same tickets


class LiveIndex:
    """`live_counts` kept up to date ticket by ticket: O(log n) per change and per scope read.

    overdue(now) = tickets with due <= now; at_risk(now) = tickets with risk <= now < due, which is
    count(risk <= now) - count(due <= now) because risk <= due for every ticket.
    """

    def __init__(self) -> None:
        self.scopes: dict[str, _ScopeIndex] = {}

    def _apply(self, t: Ticket, sign: int) -> None:
        due, risk = t.due, t.due - AT_RISK_SHARE * t.target_s
        for s in t.scopes():
            ix = self.scopes.get(s)
            if ix is None:
                ix = self.scopes[s] = _ScopeIndex()
            ix.backlog += sign
            if not t.responded:
                if sign > 0:
                    ix.due.add(due)
                    ix.risk.add(risk)
                    ix.created.add(t.created_at)
                else:
                    ix.due.remove(due)
                    ix.risk.remove(risk)
                    ix.created.remove(t.created_at)
            if ix.backlog == 0:
                del self.scopes[s]

    def replace(self, old: Ticket | None, new: Ticket | None) -> None:
        if old is not None:
            self._apply(old, -1)
        if new is not None:
            self._apply(new, +1)

    def counts(self, scope: str, *, now: float) -> LiveCounts:
        ix = self.scopes.get(scope)
        if ix is None:
            return LiveCounts()
        overdue = ix.due.bisect_right(now)
        return LiveCounts(ix.backlog, overdue, ix.risk.bisect_right(now) - overdue, len(ix.created),
                          float(ix.created[0]) if ix.created else None)

    def all(self, *, now: float) -> dict[str, LiveCounts]:
        return {s: self.counts(s, now=now) for s in self.scopes}
