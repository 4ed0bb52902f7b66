"""Live call state (kpis.md "Live state"): calls waiting in a queue now. No I/O, no clock.

A call waits from its `call.offered` until its `call.answered`, `call.abandoned` or `call.ended`
(whichever comes first); only waiting calls are kept. A call never closed (an ACD that lost the
event) leaves the state once it was offered longer ago than the horizon (`KpiConfig.call_horizon_s`).

    calls_waiting(scope)  = waiting calls in the scope
    longest_wait_s(scope) = now - the oldest waiting call's offer time; None when none waits

Events of one call arrive in order (the contract keys calls by `call_id`); a call whose answer
arrives before its offer (an upstream that reorders) counts as waiting until the horizon.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sortedcontainers import SortedList

from stream.events import CallEvent, CallOffered


@dataclass(slots=True)
class Call:
    queue: str
    team: str
    channel: str
    tier: str
    offered_at: float
    wm: int = -1  # offset of the last event applied (idempotent replay)

    def scopes(self) -> list[str]:
        return ["all", f"team:{self.team}", f"queue:{self.queue}", f"channel:{self.channel}", f"tier:{self.tier}"]

    def to_json(self) -> dict[str, Any]:
        return {"o": self.wm, "queue": self.queue, "team": self.team, "channel": self.channel, "tier": self.tier,
                "offered_at": self.offered_at}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Call:
        return cls(d["queue"], d["team"], d["channel"], d["tier"], float(d["offered_at"]), int(d["o"]))

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Call:
        return cls.from_json(orjson.loads(raw))


def transition(current: Call | None, ev: CallEvent) -> Call | None:
    """The waiting call after `ev`; None means it no longer waits (or never did)."""
    if isinstance(ev, CallOffered):
        return current or Call(ev.queue, ev.team, ev.channel, ev.customer_tier, ev.ts.timestamp())
    return None


@dataclass(slots=True)
class Waiting:
    calls: int = 0
    oldest_offered_at: float | None = None

    def longest_wait_s(self, now: float) -> float | None:
        return max(0.0, now - self.oldest_offered_at) if self.oldest_offered_at is not None else None


def waiting(calls: Iterable[Call]) -> dict[str, Waiting]:
    """calls_waiting and the oldest offer time per scope (the definition `CallIndex` keeps up to date)."""
    out: dict[str, Waiting] = defaultdict(Waiting)
    for c in calls:
        for s in c.scopes():
            w = out[s]
            w.calls += 1
            if w.oldest_offered_at is None or c.offered_at < w.oldest_offered_at:
                w.oldest_offered_at = c.offered_at
    return out


class CallIndex:
    """`waiting` kept up to date call by call: O(log n) per change, O(1) per scope read. (A sorted
    list per scope; a queue with tens of thousands of waiting calls stays cheap to update.)"""

    def __init__(self) -> None:
        self.scopes: dict[str, SortedList] = {}

    def replace(self, old: Call | None, new: Call | None) -> None:
        if old is not None:
            for s in old.scopes():
                offered = self.scopes[s]
                offered.remove(old.offered_at)
                if not offered:
                    del self.scopes[s]
        if new is not None:
            for s in new.scopes():
                offered = self.scopes.get(s)
                if offered is None:
                    offered = self.scopes[s] = SortedList()
                offered.add(new.offered_at)

    def of(self, scope: str) -> Waiting:
        offered = self.scopes.get(scope)
        return Waiting(len(offered), float(offered[0])) if offered else Waiting()

    def all(self) -> dict[str, Waiting]:
        return {s: self.of(s) for s in self.scopes}
