"""Every record sqm keeps on its compacted topics: one typed key per kind, and the codecs. Pure.

The state topic (`sqm.state`, partition p = source partition p), the scope topic (`sqm.scopes`, the
bucket and ticket records again, partition = scope's hash) and the alert-state topic
(`sqm.alert-state`) all carry these records. Keys are JSON arrays so that any dimension value
(quotes, brackets, unicode, control characters) round-trips; the first element names the kind:

| kind | key | value |
|---|---|---|
| `BucketKey` | `["b", topic, p, scope, bucket]` | `BucketValue`: watermark + KPI accumulator |
| `TicketKey` | `["t", p, ticket_id]` | `Ticket` (stream/tickets.py), or a tombstone when it left the state |
| `CallKey` | `["k", p, call_id]` | `Call` (stream/calls.py): a call waiting now; tombstone once it is not |
| `CommentKey` | `["m", p, survey_id]` | `Comment`: a recent low-score survey comment; tombstone once evicted |
| `DedupeKey` | `["d", topic, p, first_offset]` | `DedupeBatch`: event ids first seen in one batch |
| `CountersKey` | `["c", topic, p]` | `Counters`: events by type, dead letters by reason, late, duplicates |
| `HeartbeatKey` | `["w", worker]` | `Heartbeat` (partition 0 of the state topic) |
| `AlertKey` | `["a", rule_id, scope]` | the alert state (alerts/engine.py `AlertState.to_json()`) |
| `SentinelKey` | `["s", token]` | `{}`: a reader reads up to it (stream/store.py); tombstoned after |

Readers decode the key and `match` on its type; a key that is not one of these (another version, a
foreign writer) decodes to None and is skipped:

    match decode_key(raw_key):
        case BucketKey(topic, p, scope, bucket): ...
        case TicketKey(p, ticket_id): ...
        case None: pass
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.folds import Acc

Record = tuple[bytes, bytes | None]
HEARTBEAT_FRESH_S = 20.0  # a worker whose last heartbeat is older counts as gone


@dataclass(frozen=True, slots=True)
class BucketKey:
    topic: str  # source kind: tickets, calls, surveys
    partition: int
    scope: str
    bucket: int  # start of the bucket, epoch seconds


@dataclass(frozen=True, slots=True)
class TicketKey:
    partition: int
    ticket_id: str


@dataclass(frozen=True, slots=True)
class CallKey:
    partition: int
    call_id: str


@dataclass(frozen=True, slots=True)
class CommentKey:
    partition: int
    survey_id: str


@dataclass(frozen=True, slots=True)
class DedupeKey:
    topic: str
    partition: int
    first_offset: int


@dataclass(frozen=True, slots=True)
class CountersKey:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class HeartbeatKey:
    worker: str


@dataclass(frozen=True, slots=True)
class AlertKey:
    rule_id: str
    scope: str


@dataclass(frozen=True, slots=True)
class SentinelKey:
    token: str

    @classmethod
    def new(cls) -> SentinelKey:
        return cls(uuid.uuid4().hex)


Key = BucketKey | TicketKey | CallKey | CommentKey | DedupeKey | CountersKey | HeartbeatKey | AlertKey | SentinelKey


def encode_key(key: Key) -> bytes:
    match key:
        case BucketKey(topic, p, scope, bucket):
            return orjson.dumps(["b", topic, p, scope, bucket])
        case TicketKey(p, tid):
            return orjson.dumps(["t", p, tid])
        case CallKey(p, cid):
            return orjson.dumps(["k", p, cid])
        case CommentKey(p, sid):
            return orjson.dumps(["m", p, sid])
        case DedupeKey(topic, p, first):
            return orjson.dumps(["d", topic, p, first])
        case CountersKey(topic, p):
            return orjson.dumps(["c", topic, p])
        case HeartbeatKey(worker):
            return orjson.dumps(["w", worker])
        case AlertKey(rule_id, scope):
            return orjson.dumps(["a", rule_id, scope])
        case SentinelKey(token):
            return orjson.dumps(["s", token])
    raise TypeError(f"not a record key: {key!r}")


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def decode_key(raw: bytes | None) -> Key | None:
    """The typed key of a record, or None for anything that is not one of ours."""
    if not raw:
        return None
    try:
        k = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    match k:
        case ["b", str(topic), p, str(scope), b] if _int(p) and _int(b):
            return BucketKey(topic, p, scope, b)
        case ["t", p, str(tid)] if _int(p):
            return TicketKey(p, tid)
        case ["k", p, str(cid)] if _int(p):
            return CallKey(p, cid)
        case ["m", p, str(sid)] if _int(p):
            return CommentKey(p, sid)
        case ["d", str(topic), p, first] if _int(p) and _int(first):
            return DedupeKey(topic, p, first)
        case ["c", str(topic), p] if _int(p):
            return CountersKey(topic, p)
        case ["w", str(worker)]:
            return HeartbeatKey(worker)
        case ["a", str(rule_id), str(scope)]:
            return AlertKey(rule_id, scope)
        case ["s", str(token)]:
            return SentinelKey(token)
    return None


# -- values --------------------------------------------------------------------------------------
def loads(raw: bytes) -> Any:
    return orjson.loads(raw)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


@dataclass(slots=True)
class BucketValue:
    """A KPI bucket: its accumulator and the source offset of the last event applied (watermark)."""

    wm: int
    acc: Acc

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "a": self.acc.to_json()})

    @classmethod
    def from_bytes(cls, raw: bytes) -> BucketValue:
        d = orjson.loads(raw)
        return cls(int(d["o"]), Acc.from_json(d["a"]))


@dataclass(slots=True)
class Comment:
    """A low-score survey response with a comment (CSAT <= 2 or NPS <= 6), for the supervisors' board."""

    ts: float
    team: str
    channel: str
    tier: str
    agent: str | None
    csat: int | None
    nps: int | None
    text: str
    language: str | None = None
    wm: int = -1

    def scopes(self) -> list[str]:
        out = ["all", f"team:{self.team}", f"channel:{self.channel}", f"tier:{self.tier}"]
        if self.agent:
            out.append(f"agent:{self.agent}")
        return out

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "ts": self.ts, "team": self.team, "channel": self.channel,
                             "tier": self.tier, "agent": self.agent, "csat": self.csat, "nps": self.nps,
                             "text": self.text, "language": self.language})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Comment:
        d = orjson.loads(raw)
        return cls(float(d["ts"]), d["team"], d["channel"], d["tier"], d.get("agent"), d.get("csat"), d.get("nps"),
                   d["text"], d.get("language"), int(d["o"]))


@dataclass(slots=True)
class DedupeBatch:
    """The event ids first seen in one batch, with their offsets; `exp` is the newest event time."""

    exp: float
    ids: dict[str, int]

    def to_bytes(self) -> bytes:
        return orjson.dumps({"exp": self.exp, "ids": self.ids})

    @classmethod
    def from_bytes(cls, raw: bytes) -> DedupeBatch:
        d = orjson.loads(raw)
        return cls(float(d["exp"]), dict(d["ids"]))


@dataclass(slots=True)
class Counters:
    """Pipeline counters of one source topic partition, with their watermark."""

    wm: int = -1
    events: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    late: int = 0
    dup: int = 0

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "events": self.events, "dead": self.dead, "late": self.late,
                             "dup": self.dup})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Counters:
        d = orjson.loads(raw)
        return cls(int(d["o"]), dict(d["events"]), dict(d["dead"]), int(d["late"]), int(d["dup"]))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker says of itself every few seconds (read by the API for /readyz and /metrics)."""

    ts: float
    pid: int = 0
    role: str = "all"
    assigned: tuple[int, ...] = ()  # source partitions
    processed: int = 0
    rss: int = 0
    lag: int = 0  # source messages fetched but not yet applied
    rules: int = 0
    alert_transitions: int = 0
    alerts_firing: dict[str, int] = field(default_factory=dict)
    alert_partitions: tuple[int, ...] = ()  # scope partitions whose alerts this worker evaluates

    def is_fresh(self, now: float) -> bool:
        return now - self.ts < HEARTBEAT_FRESH_S

    def age(self, now: float) -> float:
        return now - self.ts

    def to_bytes(self) -> bytes:
        return orjson.dumps({"ts": self.ts, "pid": self.pid, "role": self.role, "assigned": list(self.assigned),
                             "processed": self.processed, "rss": self.rss, "lag": self.lag, "rules": self.rules,
                             "alert_transitions": self.alert_transitions, "alerts_firing": self.alerts_firing,
                             "alert_partitions": list(self.alert_partitions)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Heartbeat:
        d = orjson.loads(raw)
        return cls(ts=float(d.get("ts", 0.0)), pid=int(d.get("pid", 0)), role=str(d.get("role", "all")),
                   assigned=tuple(int(p) for p in d.get("assigned", ())), processed=int(d.get("processed", 0)),
                   rss=int(d.get("rss", 0)), lag=int(d.get("lag", 0)), rules=int(d.get("rules", 0)),
                   alert_transitions=int(d.get("alert_transitions", 0)),
                   alerts_firing={str(k): int(v) for k, v in dict(d.get("alerts_firing", {})).items()},
                   alert_partitions=tuple(int(p) for p in d.get("alert_partitions", ())))


SENTINEL_VALUE = b"{}"
