"""Live agent state (docs/workforce.md "Agent live state"): who is available now. No I/O, no clock.

One `Agent` per agent: the state, reason, queues and team of its newest event, and `since`, the `ts`
of the event that set that state. An agent counts in `all`, its team's scope, the queue scopes of the
queues it serves and its own `agent:` scope. Per scope:

    agents_staffed                 agents whose state is not offline
    agents_<state>                 agents in that state (available, on_contact, after_contact_work, away)
    longest_<state>_s              now minus the `since` of the agent longest in that state; None when none

Events of one agent may arrive out of order: the one with the latest `ts` wins, ties go to the later
offset, and an older one never overwrites a newer one. An event that repeats the current state and
reason does not reset `since`. An agent whose newest event is older than the horizon leaves the state
(`KpiConfig.agent_horizon_s`), so a person who never logged off is not staffed forever.

Time in state (workforce.md "Windowed agent KPIs"): each agent's timeline is cut into spells, and a
spell is booked into the time buckets it spans (`split`) when it ends, in the scopes the agent had
during it; `booked` is where the unbooked part of the current state starts (its `since`, or the
event that moved the agent to another team or queue). The view adds the current state's time up to
the request time (`AgentIndex.open_seconds`). An event older than the agent's newest changes nothing,
its time included: the state it would have inserted counts as the state the agent was in.

    >>> list(split(50.0, 200.0, 60))       # a spell from 0:50 to 3:20, in minute buckets
    [(0, 10.0), (60, 60.0), (120, 60.0), (180, 20.0)]

    >>> a = transition(None, "tech", ("tech-line",), "available", None, 100.0, 7)
    >>> a = transition(a, "tech", None, "available", None, 160.0, 8)       # a repeat: since stays
    >>> (a.state, a.since, a.ts, a.queues)
    ('available', 100.0, 160.0, ('tech-line',))
    >>> transition(a, "tech", None, "away", "lunch", 150.0, 9) is None     # older than what we know
    True
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sortedcontainers import SortedList

from stream.events import AGENT_STATES as STATES

COUNTED = STATES[:-1]  # the states with a count and a longest-in-state figure
#: the accumulator counter (stream.folds) that holds the seconds spent in each state but offline
TIME_FIELD = {"available": "t_available", "on_contact": "t_on_contact", "after_contact_work": "t_acw",
              "away": "t_away"}


@dataclass(slots=True)
class Agent:
    team: str
    queues: tuple[str, ...]
    state: str
    reason: str | None
    since: float  # ts of the event that set this state (and reason)
    ts: float  # ts of the newest event applied
    wm: int = -1  # offset of that event (ties between equal ts; idempotent replay)
    booked: float = -1.0  # start of the current state's time not yet booked (negative: since)
    # the agent's own time in state: its closed spells of the last 24 h, (start, end, STATES index)
    spells: list[tuple[float, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.booked < 0:
            self.booked = self.since

    def scopes(self, name: str) -> list[str]:
        return ["all", f"team:{self.team}", f"agent:{name}", *(f"queue:{q}" for q in self.queues)]

    def to_json(self) -> dict[str, Any]:
        return {"o": self.wm, "team": self.team, "queues": list(self.queues), "state": self.state,
                "reason": self.reason, "since": self.since, "ts": self.ts, "b": self.booked,
                "sp": [[round(a, 3), round(b, 3), k] for a, b, k in self.spells]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Agent:
        return cls(d["team"], tuple(d["queues"]), d["state"], d["reason"], float(d["since"]), float(d["ts"]),
                   int(d["o"]), float(d.get("b", -1.0)), [(float(a), float(b), int(k)) for a, b, k in d.get("sp", ())])

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Agent:
        return cls.from_json(orjson.loads(raw))


def transition(cur: Agent | None, team: str, queues: tuple[str, ...] | None, state: str, reason: str | None,
               ts: float, offset: int) -> Agent | None:
    """The agent after an event at `ts` (offset `offset`); None when the event is older than what the
    state holds (it changes nothing live)."""
    if cur is not None and (ts, offset) <= (cur.ts, cur.wm):
        return None
    keep = cur.queues if cur is not None else ()
    q = keep if queues is None else queues
    if cur is not None and cur.state == state and cur.reason == reason:
        moved = (team, q) != (cur.team, cur.queues)  # its time from now on counts in other scopes
        return Agent(team, q, state, reason, cur.since, ts, offset, ts if moved else cur.booked)
    return Agent(team, q, state, reason, ts, ts, offset, ts)


STATE_INDEX = {state: i for i, state in enumerate(STATES)}
SPELLS_KEPT = 400  # an agent's closed spells kept in its record at most (a busy day has about 200)
SPELLS_HORIZON_S = 86400.0  # the longest window


def recent_spells(spells: list[tuple[float, float, int]], now: float) -> list[tuple[float, float, int]]:
    """The spells that end within the longest window, the newest SPELLS_KEPT of them."""
    kept = [sp for sp in spells if sp[1] > now - SPELLS_HORIZON_S]
    return kept[-SPELLS_KEPT:]


def agent_seconds(a: Agent, start: float, end: float) -> dict[str, float]:
    """Seconds in [start, end) the agent spent in each state but offline: its closed spells clipped to
    the range, and its current state from `booked` up to `end`."""
    out = dict.fromkeys(TIME_FIELD, 0.0)
    for s0, s1, k in a.spells:
        state = STATES[k]
        if state in out:
            out[state] += max(0.0, min(s1, end) - max(s0, start))
    if a.state in out:
        out[a.state] += max(0.0, end - max(a.booked, start))
    return out


def split(start: float, end: float, size: int) -> Iterator[tuple[int, float]]:
    """The buckets of `size` seconds that [start, end) spans, each with the seconds it holds (none when
    the range is empty)."""
    if end <= start:
        return
    b = int(start // size) * size
    while b < end:
        yield b, float(min(end, b + size) - max(start, b))
        b += size


@dataclass(frozen=True, slots=True)
class AgentCounts:
    """The agent figures of one scope."""

    staffed: int
    by_state: dict[str, int]
    oldest_since: dict[str, float]  # state -> the earliest `since` among its agents

    def longest_s(self, state: str, now: float) -> float | None:
        s = self.oldest_since.get(state)
        return max(0.0, now - s) if s is not None else None


class AgentIndex:
    """Agents per scope and state, kept up to date agent by agent: O(log n) per change."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str], SortedList] = {}  # (scope, state) -> sinces
        self.open: dict[tuple[str, str], SortedList] = {}  # (scope, state) -> booked (time not yet in buckets)
        self.scopes: dict[str, int] = {}  # scope -> agents (any state)

    def replace(self, name: str, old: Agent | None, new: Agent | None) -> None:
        if old is not None:
            for s in old.scopes(name):
                sinces = self.index[(s, old.state)]
                sinces.remove(old.since)
                if not sinces:
                    del self.index[(s, old.state)]
                if not s.startswith("agent:"):  # an agent's own time comes from its record (View)
                    booked = self.open[(s, old.state)]
                    booked.remove(old.booked)
                    if not booked:
                        del self.open[(s, old.state)]
                self.scopes[s] -= 1
                if not self.scopes[s]:
                    del self.scopes[s]
        if new is not None:
            for s in new.scopes(name):
                sinces = self.index.get((s, new.state))
                if sinces is None:
                    sinces = self.index[(s, new.state)] = SortedList()
                sinces.add(new.since)
                if not s.startswith("agent:"):
                    booked = self.open.get((s, new.state))
                    if booked is None:
                        booked = self.open[(s, new.state)] = SortedList()
                    booked.add(new.booked)
                self.scopes[s] = self.scopes.get(s, 0) + 1

    def open_seconds(self, scope: str, state: str, start: float, end: float) -> float:
        """Seconds in [start, end) that the scope's agents now in `state` spent in it and that are not
        booked yet: each counts from max(booked, start)."""
        booked = self.open.get((scope, state))
        if not booked:
            return 0.0
        i, j = bisect_left(booked, start), bisect_left(booked, end)
        return float(i * (end - start) + sum(end - b for b in booked.islice(i, j)))

    def of(self, scope: str) -> AgentCounts:
        by: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for state in STATES:
            sinces = self.index.get((scope, state))
            if sinces:
                by[state], oldest[state] = len(sinces), float(sinces[0])
        return AgentCounts(sum(n for s, n in by.items() if s != "offline"), by, oldest)
