"""Per-partition processing state and its records on the state topic. Pure: no I/O, no clock.

One `PartitionState` holds everything a worker knows about source partition `p` of the three input
topics: KPI buckets per (topic, scope, bucket), open tickets, the `event_id`s seen in the last 24 h
(as fingerprints, `stream/dedupe.py`), and the partition's pipeline counters. Each piece carries the
source offset of the last event applied to it (its watermark), which makes replay after a crash exact:

- an event whose offset is <= a piece's watermark is already in that piece and is skipped for it;
- an `event_id` seen at offset o is the original at o and a duplicate anywhere else.

So a worker killed at any point (even between two records of the same batch) restarts from its last
committed offset, reloads the records, re-reads the tail and ends with exactly the same state. The
records' keys and values are defined in `stream/records.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from stream.agents import STATE_INDEX, TIME_FIELD, Agent, recent_spells, split
from stream.agents import transition as agent_transition
from stream.calls import Call
from stream.calls import transition as call_transition
from stream.caps import ScopeIndex
from stream.dedupe import DedupeIndex
from stream.events import AgentStateChanged, CallEvent, Event, Rejected, SurveySubmitted, TicketEvent, decode
from stream.folds import FIELDS, IX, Acc, Contribution, KpiConfig, contribution
from stream.records import (
    AgentKey,
    BucketKey,
    BucketValue,
    CallKey,
    Comment,
    CommentKey,
    Counters,
    CountersKey,
    DedupeKey,
    Record,
    TicketKey,
    TopicBucket,
    TopicKey,
    TotalKey,
    TotalValue,
    decode_key,
    encode_key,
)
from stream.scopes import scopes_of
from stream.tickets import Ticket, transition
from stream.voice import Analyser, Voice, default_analyser, topic_lexicon
from stream.windows import LONGEST, bucket_of, is_late

LIVE_AGENTS_CAP = 20_000  # agents followed live per source partition (their records are kept for the horizon)

DEDUPE_HORIZON_S = LONGEST + 600  # 24 h plus the 5 min future tolerance, with margin
COMMENTS_KEPT = 500  # newest survey comments kept per partition (the board, /v1/comments, topic examples)
TOPICS_KEPT_S = 2 * LONGEST  # topic buckets: the longest window and the one before it (a topic's change)

Scoped = tuple[tuple[str, ...], Record]  # a record and the scopes it concerns


class _Watermarked(Protocol):
    wm: int


W = TypeVar("W", bound=_Watermarked)


def _keep_newest(held: dict[str, W], key: str, vraw: bytes | None, decode: Callable[[bytes], W]) -> None:
    """Load one record into `held`: a tombstone removes the key, a value replaces a lower watermark
    (a late write of a worker that just lost the partition never rolls the state back)."""
    if vraw is None:
        held.pop(key, None)
        return
    v = decode(vraw)
    cur = held.get(key)
    if cur is None or v.wm > cur.wm:
        held[key] = v


@dataclass(slots=True)
class Bucket:
    acc: Acc = field(default_factory=Acc)
    wm: int = -1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Drained:
    """What changed since the last drain.

    `records`: one record per touched key, for the state topic. `scoped`: the bucket and ticket
    records among them, each with the scopes it concerns (a ticket record goes to the scopes it left
    as well as those it is in), for the scope-partitioned topic that the alert engine reads.
    """

    records: list[Record]
    scoped: list[Scoped]


class PartitionState:
    """State of source partition `p`; `apply` each message in offset order, then `drain` records."""

    def __init__(self, partition: int, cfg: KpiConfig, bucket_s: int, ticket_horizon_s: float,
                 analyser: Analyser | None = None) -> None:
        self.p = partition
        self.cfg = cfg
        self.analyser = analyser or default_analyser()  # reads survey comments (stream/voice.py)
        self.bucket_s = bucket_s
        self.ticket_horizon_s = ticket_horizon_s
        self.buckets: dict[tuple[str, str, int], Bucket] = {}
        self.tickets: dict[str, Ticket] = {}
        self.calls: dict[str, Call] = {}
        self.agents: dict[str, Agent] = {}
        self.comments: dict[str, Comment] = {}
        self.topics: dict[tuple[str, int], TopicBucket] = {}  # (scope, bucket) -> its comments' topics
        self._dirty_topics: set[tuple[str, int]] = set()
        self._known_topics = topic_lexicon()[0].keys()
        # (ts, survey id) of the newest comment evicted by the cap: one at or below it is not kept again
        # (a replay after a crash would bring evicted comments back)
        self._comment_floor: tuple[float, str] = (float("-inf"), "")
        self.counters: dict[str, Counters] = {}
        self.seen: dict[str, DedupeIndex] = {}  # per topic: event ids within DEDUPE_HORIZON_S
        self._dirty_buckets: set[tuple[str, str, int]] = set()
        self._dirty_tickets: set[str] = set()
        self._dirty_calls: dict[str, tuple[str, ...]] = {}  # call id -> its scopes
        self._dirty_agents: dict[str, set[str]] = {}  # agent -> the scopes it was or is in
        self._dirty_comments: set[str] = set()
        self._ticket_scopes_before: dict[str, list[str]] = {}
        self._dirty_counters: set[str] = set()
        # (topic, scope) -> the scope's KPI counters since it first counted here: monotonic, never
        # expired, what Prometheus' `increase()` needs for any range (records.TotalValue)
        self.totals: dict[tuple[str, str], TotalValue] = {}
        self._dirty_totals: set[tuple[str, str]] = set()
        self._tombstones: list[tuple[bytes, tuple[str, ...]]] = []
        self.index = ScopeIndex(cfg.scope_caps)  # distinct values per dimension (stream/caps.py)

    # -- processing -------------------------------------------------------------------------
    def apply(self, topic: str, offset: int, raw: bytes, *, now: float,
              now_dt: datetime | None = None) -> Event | DeadLetter | None:
        """Process one message of `topic` ('tickets', 'calls', 'surveys') at `offset`.

        Returns the event when it was counted, a DeadLetter to publish, or None (duplicate, or a
        replayed message whose effects are already in the state).
        """
        c = self.counters.get(topic)
        if c is None:
            c = self.counters[topic] = Counters()
        fresh = offset > c.wm
        if fresh:
            c.wm = offset
            self._dirty_counters.add(topic)
        result = decode(raw, now=now_dt or datetime.fromtimestamp(now, UTC), topic_kind=topic,
                        state_map=self.cfg.agent_state_map)
        if isinstance(result, Rejected):
            if not fresh:
                return None
            c.dead[result.reason] = c.dead.get(result.reason, 0) + 1
            return DeadLetter(topic, self.p, offset, result.reason, result.detail, raw)
        ev = result
        seen = self.seen.get(topic)
        if seen is None:
            seen = self.seen[topic] = DedupeIndex(topic, self.p)
        ts = ev.ts.timestamp()
        if seen.first(ev.event_id, offset, ts) != offset:  # the original is at another offset
            if fresh:
                c.dup += 1
            return None
        named = ev.agent if isinstance(ev, AgentStateChanged) else None
        ev, over = self.index.admit(ev)  # values beyond a dimension's cap count as `other`
        if fresh:
            c.events[ev.type] = c.events.get(ev.type, 0) + 1
            for kind in over:
                c.over[kind] = c.over.get(kind, 0) + 1
        if isinstance(ev, AgentStateChanged):
            # the live state keeps each agent by name (the grid needs who it is); only its `agent:`
            # buckets go to `agent:other` beyond the cap, like every other event's
            self._apply_agent(ev, named or ev.agent, offset, now, c if fresh else None)
            return ev
        if topic == "tickets":
            self._apply_ticket(ev, offset, now)  # type: ignore[arg-type]
        elif topic == "calls":
            self._apply_call(ev, offset, now)  # type: ignore[arg-type]
        if is_late(ts, now=now):
            if fresh:
                c.late += 1
            return None
        scopes, b = scopes_of(ev), bucket_of(ts, self.bucket_s)
        voice = None
        if isinstance(ev, SurveySubmitted) and ev.comment is not None:
            voice = self.analyser.analyse(ev.comment, language=ev.language, csat=ev.csat, nps=ev.nps)
            if voice is not None:
                self._apply_comment(ev, voice, offset)
                self._count_topics(scopes, b, voice, offset)
        self._count(topic, scopes, b, contribution(ev, self.cfg, voice), offset)
        return ev

    def _count(self, topic: str, scopes: Iterable[str], b: int, contrib: Contribution, offset: int,
               total: Contribution | None = None) -> None:
        """Add `contrib` to bucket `b` of each scope, and `total` (default: `contrib`) to the scope's
        totals, once per offset (a spell over many buckets passes its whole time once, as `total`)."""
        buckets, dirty = self.buckets, self._dirty_buckets
        for scope in scopes:
            k = (topic, scope, b)
            bucket = buckets.get(k)
            if bucket is None:
                bucket = buckets[k] = Bucket()
                self.index.add(scope)
            if offset > bucket.wm:
                bucket.acc.add(contrib)
                bucket.wm = offset
                dirty.add(k)
        self._add_totals(topic, scopes, total or contrib, offset)

    def _add_totals(self, topic: str, scopes: Iterable[str], contrib: Contribution, offset: int) -> None:
        totals, agent_totals = self.totals, self.cfg.agent_totals
        for scope in scopes:
            if agent_totals or not scope.startswith("agent:"):
                tk = (topic, scope)
                total = totals.get(tk)
                if total is None:
                    total = totals[tk] = TotalValue(-1, [0] * len(FIELDS))
                if offset > total.wm:
                    v = total.v
                    for i, inc in contrib.incs:
                        v[i] += inc
                    total.wm = offset
                    self._dirty_totals.add(tk)

    def _apply_ticket(self, ev: TicketEvent, offset: int, now: float) -> None:
        tid = ev.ticket_id
        cur = self.tickets.get(tid)
        if cur is not None and offset <= cur.wm:
            return
        if ev.created_at.timestamp() < now - self.ticket_horizon_s:
            return
        if tid not in self._ticket_scopes_before:
            self._ticket_scopes_before[tid] = cur.scopes() if cur is not None else []
        nxt = transition(cur, ev, self.cfg.fr_target(ev.customer_tier))
        if nxt is None:
            if cur is not None:
                del self.tickets[tid]
                self._dirty_tickets.add(tid)
            return
        nxt.wm = offset
        self.tickets[tid] = nxt
        self._dirty_tickets.add(tid)

    def _apply_call(self, ev: CallEvent, offset: int, now: float) -> None:
        cid = ev.call_id
        cur = self.calls.get(cid)
        if cur is not None and offset <= cur.wm:
            return
        if ev.ts.timestamp() < now - self.cfg.call_horizon_s:
            return
        nxt = call_transition(cur, ev)
        if nxt is None:
            if cur is not None:
                del self.calls[cid]
                self._dirty_calls[cid] = tuple(cur.scopes())
            return
        nxt.wm = offset
        self.calls[cid] = nxt
        self._dirty_calls[cid] = tuple(nxt.scopes())

    def _apply_agent(self, ev: AgentStateChanged, name: str, offset: int, now: float,
                     counters: Counters | None) -> None:
        cur = self.agents.get(name)
        ts = ev.ts.timestamp()
        if ts < now - self.cfg.agent_horizon_s:
            return  # it would leave at once
        if cur is None and len(self.agents) >= LIVE_AGENTS_CAP:
            if counters is not None:  # a flood of agent names: the ones beyond the bound are not followed
                counters.over["agent_state"] = counters.over.get("agent_state", 0) + 1
            return
        nxt = agent_transition(cur, ev.team, ev.queues, ev.state, ev.reason, ts, offset)
        if nxt is None:
            return  # older than the agent's newest event (or replayed)
        if cur is not None:
            nxt.spells = recent_spells(cur.spells, now)
        if cur is not None and nxt.booked > cur.booked and cur.state in TIME_FIELD:
            # the time since `booked` ends here: into the buckets it spans, in the team, queue and `all`
            # scopes it had; the agent's own scope keeps it as a spell in the agent's record (a minute
            # bucket per agent and minute logged in would not fit in memory for thousands of agents)
            i, oldest = IX[TIME_FIELD[cur.state]], bucket_of(now - LONGEST, self.bucket_s)
            shared = [sc for sc in cur.scopes(name) if not sc.startswith("agent:")]
            pieces = list(split(max(cur.booked, oldest), nxt.booked, self.bucket_s))
            whole = Contribution(((i, sum(x for _, x in pieces)),))
            for b, secs in pieces:
                self._count("agents", shared, b, Contribution(((i, secs),)), offset, total=whole)
            nxt.spells = recent_spells([*nxt.spells, (cur.booked, nxt.booked, STATE_INDEX[cur.state])], now)
        self.agents[name] = nxt
        scopes = self._dirty_agents.setdefault(name, set())
        if cur is not None:
            scopes.update(cur.scopes(name))
        scopes.update(nxt.scopes(name))

    def _apply_comment(self, ev: SurveySubmitted, voice: Voice, offset: int) -> None:
        sid = ev.survey_id
        if sid in self.comments and offset <= self.comments[sid].wm:
            return
        if sid not in self.comments and (ev.ts.timestamp(), sid) <= self._comment_floor:
            return  # as old as those the cap evicted: it would be evicted first (or was, before a crash)
        self.comments[sid] = Comment(ev.ts.timestamp(), ev.team, ev.channel, ev.customer_tier, ev.agent, ev.csat,
                                     ev.nps, ev.comment or "", voice.language, offset, sid, ev.ces, voice.sentiment,
                                     voice.label, voice.topics, voice.mismatch)
        self._dirty_comments.add(sid)
        if len(self.comments) > COMMENTS_KEPT + COMMENTS_KEPT // 10:  # evict the oldest tenth at once
            by_age = sorted(self.comments, key=lambda k: (self.comments[k].ts, k))
            for old in by_age[:len(self.comments) - COMMENTS_KEPT]:
                self._comment_floor = max(self._comment_floor, (self.comments[old].ts, old))
                del self.comments[old]
                self._dirty_comments.add(old)

    def _count_topics(self, scopes: Iterable[str], b: int, voice: Voice, offset: int) -> None:
        for scope in scopes:
            k = (scope, b)
            tb = self.topics.get(k)
            if tb is None:
                tb = self.topics[k] = TopicBucket()
            if offset > tb.wm:
                tb.add(voice.label, voice.topics, self._known_topics)
                tb.wm = offset
                self._dirty_topics.add(k)

    # -- records ------------------------------------------------------------------------------
    def drain(self) -> Drained:
        """Records for everything changed since the last drain (one per touched key)."""
        p = self.p
        out: list[Record] = [(k, None) for k, _ in self._tombstones]
        scoped: list[Scoped] = [(s, (k, None)) for k, s in self._tombstones]
        self._tombstones = []
        for topic, scope, b in self._dirty_buckets:
            bucket = self.buckets.get((topic, scope, b))
            if bucket is not None:
                rec: Record = (encode_key(BucketKey(topic, p, scope, b)), BucketValue(bucket.wm, bucket.acc).to_bytes())
                out.append(rec)
                scoped.append(((scope,), rec))
        before = self._ticket_scopes_before
        for tid in self._dirty_tickets:
            t = self.tickets.get(tid)
            rec = (encode_key(TicketKey(p, tid)), t.to_bytes() if t else None)
            out.append(rec)
            scopes = set(before.get(tid, ()))
            if t is not None:
                scopes.update(t.scopes())
            scoped.append((tuple(scopes), rec))
        before.clear()
        for cid, call_scopes in self._dirty_calls.items():
            c = self.calls.get(cid)
            rec = (encode_key(CallKey(p, cid)), c.to_bytes() if c else None)
            out.append(rec)
            scoped.append((call_scopes, rec))
        for name, agent_scopes in self._dirty_agents.items():
            a = self.agents.get(name)
            rec = (encode_key(AgentKey(p, name)), a.to_bytes() if a else None)
            out.append(rec)
            scoped.append((tuple(sorted(agent_scopes)), rec))
        for sid in self._dirty_comments:
            m = self.comments.get(sid)
            out.append((encode_key(CommentKey(p, sid)), m.to_bytes() if m else None))
        for scope, b in self._dirty_topics:
            tb = self.topics.get((scope, b))
            if tb is not None:
                rec = (encode_key(TopicKey(p, scope, b)), tb.to_bytes())
                out.append(rec)
                scoped.append(((scope,), rec))
        self._dirty_topics.clear()
        for seen in self.seen.values():
            out.extend(seen.flush())
        for topic in self._dirty_counters:
            out.append((encode_key(CountersKey(topic, p)), self.counters[topic].to_bytes()))
        for topic, scope in self._dirty_totals:
            out.append((encode_key(TotalKey(topic, p, scope)), self.totals[(topic, scope)].to_bytes()))
        self._dirty_totals.clear()
        self._dirty_buckets.clear()
        self._dirty_tickets.clear()
        self._dirty_calls.clear()
        self._dirty_agents.clear()
        self._dirty_comments.clear()
        self._dirty_counters.clear()
        return Drained(out, scoped)

    def _bound_live(self, now: float) -> None:
        """At most cfg.max_live_tickets tickets and cfg.max_live_calls calls (a flood of made-up ids
        would otherwise grow them for the ticket and call horizons): the oldest go, counted in the
        topic's counters (`evicted`), their tombstones with the next drain."""
        over = len(self.tickets) - self.cfg.max_live_tickets
        if over > 0:
            for tid in sorted(self.tickets, key=lambda t: (self.tickets[t].created_at, t))[:over]:
                self._ticket_scopes_before.setdefault(tid, self.tickets[tid].scopes())
                del self.tickets[tid]
                self._dirty_tickets.add(tid)
            self._evicted("tickets", "ticket", over)
        over = len(self.calls) - self.cfg.max_live_calls
        if over > 0:
            for cid in sorted(self.calls, key=lambda c: (self.calls[c].offered_at, c))[:over]:
                self._dirty_calls[cid] = tuple(self.calls.pop(cid).scopes())
            self._evicted("calls", "call", over)

    def _evicted(self, topic: str, kind: str, n: int) -> None:
        c = self.counters.get(topic)
        if c is None:
            c = self.counters[topic] = Counters()
        c.evicted[kind] = c.evicted.get(kind, 0) + n
        self._dirty_counters.add(topic)

    def expire(self, *, now: float) -> None:
        """Drop buckets older than the longest window, dedupe ids past their horizon, stale tickets.

        Their tombstones go out with the next `drain`.
        """
        oldest = bucket_of(now - LONGEST, self.bucket_s)
        for k in [k for k in self.buckets if k[2] < oldest]:
            del self.buckets[k]
            self.index.remove(k[1])
            self._dirty_buckets.discard(k)
            self._tombstones.append((encode_key(BucketKey(k[0], self.p, k[1], k[2])), (k[1],)))
        for seen in self.seen.values():
            self._tombstones.extend((k, ()) for k in seen.expire(now - DEDUPE_HORIZON_S))
        horizon = now - self.ticket_horizon_s
        for tid in [tid for tid, t in self.tickets.items() if t.created_at < horizon]:
            self._ticket_scopes_before.setdefault(tid, self.tickets[tid].scopes())
            del self.tickets[tid]
            self._dirty_tickets.add(tid)
        call_horizon = now - self.cfg.call_horizon_s
        for cid in [cid for cid, c in self.calls.items() if c.offered_at < call_horizon]:
            self._dirty_calls[cid] = tuple(self.calls.pop(cid).scopes())
        agent_horizon = now - self.cfg.agent_horizon_s
        for name in [n for n, a in self.agents.items() if a.ts < agent_horizon]:
            self._dirty_agents.setdefault(name, set()).update(self.agents.pop(name).scopes(name))
        self._bound_live(now)
        for sid in [sid for sid, m in self.comments.items() if m.ts <= now - LONGEST]:
            del self.comments[sid]
            self._dirty_comments.add(sid)
        oldest_topic = bucket_of(now - TOPICS_KEPT_S, self.bucket_s) - self.bucket_s  # 2 x 1,441 buckets
        for scope, b in [k for k in self.topics if k[1] < oldest_topic]:
            del self.topics[(scope, b)]
            self._dirty_topics.discard((scope, b))
            self._tombstones.append((encode_key(TopicKey(self.p, scope, b)), (scope,)))

    def load(self, records: Iterable[Record]) -> None:
        """Rebuild from the state topic (records of other partitions and kinds are ignored).

        A key keeps the value with the highest watermark, so that a late write from a worker that
        just lost the partition can never roll the state back.
        """
        p = self.p
        dedupe: dict[str, list[tuple[DedupeKey, bytes, bytes | None]]] = {}
        for kraw, vraw in records:
            match decode_key(kraw):
                case BucketKey(topic, kp, scope, b) if kp == p:
                    k = (topic, scope, b)
                    if vraw is None:
                        self.buckets.pop(k, None)
                        continue
                    v = BucketValue.from_bytes(vraw)
                    if v.wm > self.buckets.get(k, Bucket()).wm:
                        self.buckets[k] = Bucket(v.acc, v.wm)
                case TicketKey(kp, tid) if kp == p:
                    _keep_newest(self.tickets, tid, vraw, Ticket.from_bytes)
                case CallKey(kp, cid) if kp == p:
                    _keep_newest(self.calls, cid, vraw, Call.from_bytes)
                case AgentKey(kp, name) if kp == p:
                    _keep_newest(self.agents, name, vraw, Agent.from_bytes)
                case CommentKey(kp, sid) if kp == p:
                    _keep_newest(self.comments, sid, vraw, Comment.from_bytes)
                    if sid in self.comments and not self.comments[sid].read:
                        del self.comments[sid]  # the previous version's: it leaves with its 24 h
                case TopicKey(kp, scope, b) if kp == p:
                    if vraw is None:
                        self.topics.pop((scope, b), None)
                        continue
                    tv = TopicBucket.from_bytes(vraw)
                    held = self.topics.get((scope, b))
                    if held is None or tv.wm > held.wm:
                        self.topics[(scope, b)] = tv
                case DedupeKey(topic=topic, partition=kp) as key if kp == p:
                    dedupe.setdefault(topic, []).append((key, kraw, vraw))
                case TotalKey(topic, kp, scope) if kp == p and vraw is not None:
                    total = TotalValue.from_bytes(vraw)
                    if total.wm > self.totals.get((topic, scope), TotalValue(-1, [])).wm:
                        self.totals[(topic, scope)] = total
                case CountersKey(topic, kp) if kp == p and vraw is not None:
                    c = Counters.from_bytes(vraw)
                    if c.wm > self.counters.get(topic, Counters()).wm:
                        self.counters[topic] = c
        for topic, recs in dedupe.items():
            seen = self.seen.get(topic)
            if seen is None:
                seen = self.seen[topic] = DedupeIndex(topic, p)
            seen.load(recs)
        self.index = ScopeIndex(self.cfg.scope_caps)
        for k in self.buckets:
            self.index.add(k[1])
        if len(self.comments) >= COMMENTS_KEPT:  # the cap evicted older ones (the floor is not a record)
            self._comment_floor = min((m.ts, sid) for sid, m in self.comments.items())
