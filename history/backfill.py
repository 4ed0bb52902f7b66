"""Fold a file of past contract events into history rows, through the same pure folds as the workers.

The live windows end at 24 h, so history older than the running system can only come from a file
of the events of that time (JSON lines, any age, any order). Each line is validated like a message
on the input topics; duplicates (same `event_id`) count once; events from `until` on are skipped,
because the live history writer counts those. Events older than the minute retention go straight
to hour rows. Agent events are sorted per agent by time, and their time in state is booked up to the
file's last event (or `until`).

    rows, stats = fold_lines(lines, now=time.time(), cfg=KpiConfig(), minute_cutoff=..., until=...)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from history.series import HOUR, MINUTE, HistoryRow, floor
from stream.agents import TIME_FIELD, Agent, split
from stream.agents import transition as agent_transition
from stream.clock import utc
from stream.events import AgentStateChanged, Rejected, decode
from stream.folds import IX, Acc, KpiConfig, contribution, voice_of
from stream.scopes import scopes_of


@dataclass
class BackfillStats:
    lines: int = 0
    events: int = 0
    duplicates: int = 0
    live: int = 0  # at or after `until`: the live history has them
    rejected: Counter[str] = field(default_factory=Counter)


def fold_lines(lines: Iterable[bytes], *, now: float, cfg: KpiConfig, minute_cutoff: int,
               until: float | None) -> tuple[list[HistoryRow], BackfillStats]:
    stats = BackfillStats()
    seen: set[str] = set()
    accs: dict[tuple[str, str, int], Acc] = defaultdict(Acc)
    agents: dict[str, list[tuple[float, int, AgentStateChanged]]] = {}  # their time needs them in time order
    last = float("-inf")
    now_dt = utc(now)
    for raw in lines:
        if not raw.strip():
            continue
        stats.lines += 1
        ev = decode(raw.strip(), now=now_dt, state_map=cfg.agent_state_map)
        if isinstance(ev, Rejected):
            stats.rejected[ev.reason] += 1
            continue
        if ev.event_id in seen:
            stats.duplicates += 1
            continue
        seen.add(ev.event_id)
        ts = ev.ts.timestamp()
        last = max(last, ts)
        if isinstance(ev, AgentStateChanged) and until is not None and ts >= until:
            agents.setdefault(ev.agent, []).append((ts, stats.lines, ev))  # ends the spell before `until`
        if until is not None and ts >= until:
            stats.live += 1
            continue
        stats.events += 1
        if isinstance(ev, AgentStateChanged):
            agents.setdefault(ev.agent, []).append((ts, stats.lines, ev))
            continue
        res, start = ("m", floor(ts, MINUTE)) if ts >= minute_cutoff else ("h", floor(ts, HOUR))
        c = contribution(ev, cfg, voice_of(ev))  # a survey's comment is read as the KPI workers read it
        for scope in scopes_of(ev):
            accs[(res, scope, start)].add(c)
    end = min(until, last) if until is not None else last
    for name, evs in agents.items():
        _book_agent_time(accs, name, sorted(evs, key=lambda x: (x[0], x[1])), end, minute_cutoff)
    return [(r, s, t, a) for (r, s, t), a in sorted(accs.items())], stats


def _book_agent_time(accs: dict[tuple[str, str, int], Acc], name: str,
                     evs: list[tuple[float, int, AgentStateChanged]], end: float, minute_cutoff: int) -> None:
    """The agent's time in state (workforce.md), as the workers book it (stream/agents.py), with the
    events in time order: each spell up to the next change, the last up to `end` (the file's last
    event, or `until`, where the live path takes over); minutes from `minute_cutoff` on, hours before."""
    cur: Agent | None = None
    for ts, line, ev in [*evs, (end, -1, None)]:
        nxt = agent_transition(cur, ev.team, ev.queues, ev.state, ev.reason, ts, line) if ev is not None else None
        ends = ev is None or (nxt is not None and cur is not None and nxt.booked > cur.booked)
        if cur is not None and cur.state in TIME_FIELD and ends:
            stop = min(ts, end)
            # as the workers book it: the team, queue and `all` scopes (an agent's own time is in its record)
            i, scopes = IX[TIME_FIELD[cur.state]], [sc for sc in cur.scopes(name) if not sc.startswith("agent:")]
            pieces = [*(("h", b, x) for b, x in split(cur.booked, min(stop, minute_cutoff), HOUR)),
                      *(("m", b, x) for b, x in split(max(cur.booked, minute_cutoff), stop, MINUTE))]
            # (split gives nothing for an empty range: a spell that starts at or after `end`)
            for res, b, secs in pieces:
                for scope in scopes:
                    accs[(res, scope, b)].v[i] += secs
        if nxt is not None:
            cur = nxt
