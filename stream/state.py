"""Per-partition processing state and its records on the state topic. Pure: no I/O, no clock.

One `PartitionState` holds everything a worker knows about source partition `p` of the three input
topics: KPI buckets per (topic, scope, bucket), open tickets, the `event_id`s seen in the last 24 h,
and the partition's pipeline counters. Each piece carries the source offset of the last event applied
to it (its watermark), which makes replay after a crash exact:

- an event whose offset is <= a piece's watermark is already in that piece and is skipped for it;
- an `event_id` seen at offset o is the original at o and a duplicate anywhere else.

So a worker killed at any point (even between two records of the same batch) restarts from its last
committed offset, reloads the records, re-reads the tail and ends with exactly the same state.

Records are `(key, value)` pairs, JSON keys so that any dimension value is safe:
  ["b", topic, p, scope, bucket] -> {"o": wm, "a": Acc}         KPI bucket
  ["t", p, ticket_id]            -> {"o": wm, ...Ticket} | None  open ticket (None: left the state)
  ["d", topic, p, first_offset]  -> {"exp": ts, "ids": {id: offset}} | None   dedupe batch
  ["c", topic, p]                -> {"o": wm, "events": {...}, "dead": {...}, "late": n, "dup": n}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.events import Event, Rejected, TicketEvent, decode
from stream.folds import Acc, KpiConfig, contribution
from stream.scopes import scopes_of
from stream.tickets import Ticket, transition
from stream.windows import LONGEST, bucket_of, is_late

Key = tuple[Any, ...]
Record = tuple[bytes, bytes | None]
DEDUPE_HORIZON_S = LONGEST + 600  # 24 h plus the 5 min future tolerance, with margin


def encode_key(key: Key) -> bytes:
    return orjson.dumps(key)


def decode_key(raw: bytes) -> Key | None:
    try:
        k = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return tuple(k) if isinstance(k, list) and k else None


@dataclass(slots=True)
class Bucket:
    acc: Acc = field(default_factory=Acc)
    wm: int = -1


@dataclass(slots=True)
class Counters:
    wm: int = -1
    events: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    late: int = 0
    dup: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"o": self.wm, "events": self.events, "dead": self.dead, "late": self.late, "dup": self.dup}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Counters:
        return cls(int(d["o"]), dict(d["events"]), dict(d["dead"]), int(d["late"]), int(d["dup"]))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw: bytes


@dataclass(slots=True)
class _DedupeBatch:
    exp: float
    ids: dict[str, int]


class PartitionState:
    """State of source partition `p`; `apply` each message in offset order, then `drain` records."""

    def __init__(self, partition: int, cfg: KpiConfig, bucket_s: int, ticket_horizon_s: float) -> None:
        self.p = partition
        self.cfg = cfg
        self.bucket_s = bucket_s
        self.ticket_horizon_s = ticket_horizon_s
        self.buckets: dict[tuple[str, str, int], Bucket] = {}
        self.tickets: dict[str, Ticket] = {}
        self.counters: dict[str, Counters] = {}
        self.seen: dict[str, dict[str, int]] = {}
        self.dedupe_batches: dict[tuple[str, int], _DedupeBatch] = {}
        self._open_batch: dict[str, tuple[int, _DedupeBatch]] = {}
        self._dirty_buckets: set[tuple[str, str, int]] = set()
        self._dirty_tickets: set[str] = set()
        self._ticket_scopes_before: dict[str, list[str]] = {}
        self._dirty_counters: set[str] = set()
        self._tombstones: list[tuple[bytes, tuple[str, ...]]] = []
        # bucket and ticket records with the scopes they concern, for the scope-partitioned topic
        # that the alert engine reads (see `drain`)
        self.scoped: list[tuple[tuple[str, ...], Record]] = []

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
        result = decode(raw, now=now_dt or datetime.fromtimestamp(now, UTC), topic_kind=topic)
        if isinstance(result, Rejected):
            if not fresh:
                return None
            c.dead[result.reason] = c.dead.get(result.reason, 0) + 1
            return DeadLetter(topic, self.p, offset, result.reason, result.detail, raw)
        ev = result
        seen = self.seen.setdefault(topic, {})
        first = seen.get(ev.event_id)
        if first is not None and first != offset:
            if fresh:
                c.dup += 1
            return None
        ts = ev.ts.timestamp()
        if first is None:
            seen[ev.event_id] = offset
            self._remember(topic, ev.event_id, offset, ts)
        if fresh:
            c.events[ev.type] = c.events.get(ev.type, 0) + 1
        if topic == "tickets":
            self._apply_ticket(ev, offset, now)  # type: ignore[arg-type]
        if is_late(ts, now=now):
            if fresh:
                c.late += 1
            return None
        b = bucket_of(ts, self.bucket_s)
        contrib = contribution(ev, self.cfg)
        buckets, dirty = self.buckets, self._dirty_buckets
        for scope in scopes_of(ev):
            k = (topic, scope, b)
            bucket = buckets.get(k)
            if bucket is None:
                bucket = buckets[k] = Bucket()
            if offset > bucket.wm:
                bucket.acc.add(contrib)
                bucket.wm = offset
                dirty.add(k)
        return ev

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

    def _remember(self, topic: str, event_id: str, offset: int, ts: float) -> None:
        opened = self._open_batch.get(topic)
        if opened is None:
            opened = self._open_batch[topic] = (offset, _DedupeBatch(ts, {}))
            self.dedupe_batches[(topic, offset)] = opened[1]
        batch = opened[1]
        batch.ids[event_id] = offset
        batch.exp = max(batch.exp, ts)

    # -- records ------------------------------------------------------------------------------
    def drain(self) -> list[Record]:
        """Records for everything changed since the last drain (one per touched key).

        Also sets `scoped`: the bucket and ticket records among them, each with the scopes it
        concerns (a ticket record goes to the scopes it left as well as those it is in).
        """
        p = self.p
        out: list[Record] = [(k, None) for k, _ in self._tombstones]
        scoped: list[tuple[tuple[str, ...], Record]] = [(s, (k, None)) for k, s in self._tombstones]
        self._tombstones = []
        for topic, scope, b in self._dirty_buckets:
            bucket = self.buckets.get((topic, scope, b))
            if bucket is not None:
                rec: Record = (encode_key(("b", topic, p, scope, b)),
                       orjson.dumps({"o": bucket.wm, "a": bucket.acc.to_json()}))
                out.append(rec)
                scoped.append(((scope,), rec))
        before = self._ticket_scopes_before
        for tid in self._dirty_tickets:
            t = self.tickets.get(tid)
            rec = (encode_key(("t", p, tid)), orjson.dumps(t.to_json()) if t else None)
            out.append(rec)
            scopes = set(before.get(tid, ()))
            if t is not None:
                scopes.update(t.scopes())
            scoped.append((tuple(scopes), rec))
        before.clear()
        self.scoped = scoped
        for topic, (first, batch) in self._open_batch.items():
            out.append((encode_key(("d", topic, p, first)), orjson.dumps({"exp": batch.exp, "ids": batch.ids})))
        for topic in self._dirty_counters:
            out.append((encode_key(("c", topic, p)), orjson.dumps(self.counters[topic].to_json())))
        self._dirty_buckets.clear()
        self._dirty_tickets.clear()
        self._dirty_counters.clear()
        self._open_batch.clear()
        return out

    def expire(self, *, now: float) -> None:
        """Drop buckets older than the longest window, dedupe ids past their horizon, stale tickets.

        Their tombstones go out with the next `drain`.
        """
        oldest = bucket_of(now - LONGEST, self.bucket_s)
        for k in [k for k in self.buckets if k[2] < oldest]:
            del self.buckets[k]
            self._dirty_buckets.discard(k)
            self._tombstones.append((encode_key(("b", k[0], self.p, k[1], k[2])), (k[1],)))
        for (topic, first), batch in list(self.dedupe_batches.items()):
            if batch.exp < now - DEDUPE_HORIZON_S and self._open_batch.get(topic, (None,))[0] != first:
                seen = self.seen.get(topic, {})
                for eid in batch.ids:
                    seen.pop(eid, None)
                del self.dedupe_batches[(topic, first)]
                self._tombstones.append((encode_key(("d", topic, self.p, first)), ()))
        horizon = now - self.ticket_horizon_s
        for tid in [tid for tid, t in self.tickets.items() if t.created_at < horizon]:
            self._ticket_scopes_before.setdefault(tid, self.tickets[tid].scopes())
            del self.tickets[tid]
            self._dirty_tickets.add(tid)

    def load(self, records: Iterable[Record]) -> None:
        """Rebuild from the state topic (records of other partitions and kinds are ignored).

        A key keeps the value with the highest watermark, so that a late write from a worker that
        just lost the partition can never roll the state back.
        """
        for kraw, vraw in records:
            key = decode_key(kraw)
            if key is None:
                continue
            value = orjson.loads(vraw) if vraw is not None else None
            kind = key[0]
            if kind == "b" and len(key) == 5 and key[2] == self.p:
                k = (key[1], key[3], key[4])
                if value is None:
                    self.buckets.pop(k, None)
                elif value["o"] > self.buckets.get(k, Bucket()).wm:
                    self.buckets[k] = Bucket(Acc.from_json(value["a"]), value["o"])
            elif kind == "t" and len(key) == 3 and key[1] == self.p:
                if value is None:
                    self.tickets.pop(key[2], None)
                elif key[2] not in self.tickets or value["o"] > self.tickets[key[2]].wm:
                    self.tickets[key[2]] = Ticket.from_json(value)
            elif kind == "d" and len(key) == 4 and key[2] == self.p:
                bk = (key[1], key[3])
                old = self.dedupe_batches.pop(bk, None)
                seen = self.seen.setdefault(key[1], {})
                if old is not None:
                    for eid in old.ids:
                        seen.pop(eid, None)
                if value is not None:
                    batch = _DedupeBatch(float(value["exp"]), dict(value["ids"]))
                    self.dedupe_batches[bk] = batch
                    seen.update(batch.ids)
            elif (kind == "c" and len(key) == 3 and key[2] == self.p and value is not None
                  and value["o"] > self.counters.get(key[1], Counters()).wm):
                self.counters[key[1]] = Counters.from_json(value)
