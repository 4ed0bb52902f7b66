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
| `AgentKey` | `["g", p, agent]` | `Agent` (stream/agents.py): the agent's live state; tombstone past the horizon |
| `CommentKey` | `["m", p, survey_id]` | `Comment`: a recent survey comment and its reading; tombstone once evicted |
| `TopicKey` | `["o", p, scope, bucket]` | `TopicBucket`: watermark + one bucket's comments and topics (voice.md) |
| `DedupeKey` | `["d", topic, p, base, run, chunk]` | `DedupeChunk`: part of a run of remembered ids (stream/dedupe) |
| `CountersKey` | `["c", topic, p]` | `Counters`: events by type, dead letters by reason, late, duplicates |
| `TotalKey` | `["r", topic, p, scope]` | `TotalValue`: watermark + the KPI counters since the scope first counted |
| `HeartbeatKey` | `["w", worker]` | `Heartbeat` (partition 0 of the state topic) |
| `AlertKey` | `["a", rule_id, scope]` | the alert state (alerts/engine.py `AlertState.to_json()`) |
| `SentinelKey` | `["s", token]` | `{}`: a reader reads up to it (edge/store.py); tombstoned after |

Readers decode the key and `match` on its type; a key that is not one of these (another version, a
foreign writer) decodes to None and is skipped:

    match decode_key(raw_key):
        case BucketKey(topic, p, scope, bucket): ...
        case TicketKey(p, ticket_id): ...
        case None: pass
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from stream.folds import FIELDS, IX, Acc

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
class AgentKey:
    partition: int
    agent: str


@dataclass(frozen=True, slots=True)
class CommentKey:
    partition: int
    survey_id: str


@dataclass(frozen=True, slots=True)
class TopicKey:
    partition: int
    scope: str
    bucket: int  # start of the bucket, epoch seconds (the KPI buckets' grid)


@dataclass(frozen=True, slots=True)
class DedupeKey:
    """One chunk record of a dedupe run (stream/dedupe.py): `run` is a digest of the run's content and
    `first_offset` its lowest offset. `run == ""` names a batch record of the previous format
    (`["d", topic, p, first_offset]`, JSON ids), read once and tombstoned when it expires."""

    topic: str
    partition: int
    first_offset: int
    run: str = ""
    chunk: int = 0


@dataclass(frozen=True, slots=True)
class CountersKey:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class TotalKey:
    topic: str
    partition: int
    scope: str


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


@dataclass(frozen=True, slots=True)
class ForecastKey:
    """The forecast of a scope's KPI per quarter hour (history/forecast.py), as the API last made it."""

    scope: str
    kpi: str


Key = (BucketKey | TicketKey | CallKey | AgentKey | CommentKey | TopicKey | DedupeKey | CountersKey | TotalKey
       | HeartbeatKey | AlertKey | SentinelKey | ForecastKey)


def encode_key(key: Key) -> bytes:
    match key:
        case BucketKey(topic, p, scope, bucket):
            return orjson.dumps(["b", topic, p, scope, bucket])
        case TicketKey(p, tid):
            return orjson.dumps(["t", p, tid])
        case CallKey(p, cid):
            return orjson.dumps(["k", p, cid])
        case AgentKey(p, name):
            return orjson.dumps(["g", p, name])
        case CommentKey(p, sid):
            return orjson.dumps(["m", p, sid])
        case TopicKey(p, scope, b):
            return orjson.dumps(["o", p, scope, b])
        case DedupeKey(topic, p, first, run, chunk):
            if not run:
                if chunk:
                    raise ValueError("a dedupe key of the previous format has no chunk")
                return orjson.dumps(["d", topic, p, first])
            return orjson.dumps(["d", topic, p, first, run, chunk])
        case CountersKey(topic, p):
            return orjson.dumps(["c", topic, p])
        case TotalKey(topic, p, scope):
            return orjson.dumps(["r", topic, p, scope])
        case HeartbeatKey(worker):
            return orjson.dumps(["w", worker])
        case AlertKey(rule_id, scope):
            return orjson.dumps(["a", rule_id, scope])
        case ForecastKey(scope, kpi):
            return orjson.dumps(["f", scope, kpi])
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
        case ["g", p, str(name)] if _int(p):
            return AgentKey(p, name)
        case ["m", p, str(sid)] if _int(p):
            return CommentKey(p, sid)
        case ["o", p, str(scope), b] if _int(p) and _int(b):
            return TopicKey(p, scope, b)
        case ["d", str(topic), p, first, str(run), chunk] if _int(p) and _int(first) and _int(chunk) and run:
            return DedupeKey(topic, p, first, run, chunk)
        case ["d", str(topic), p, first] if _int(p) and _int(first):
            return DedupeKey(topic, p, first)
        case ["c", str(topic), p] if _int(p):
            return CountersKey(topic, p)
        case ["r", str(topic), p, str(scope)] if _int(p):
            return TotalKey(topic, p, scope)
        case ["w", str(worker)]:
            return HeartbeatKey(worker)
        case ["a", str(rule_id), str(scope)]:
            return AlertKey(rule_id, scope)
        case ["f", str(scope), str(kpi)]:
            return ForecastKey(scope, kpi)
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
class TotalValue:
    """The KPI counters of one (source topic, partition, scope) since the scope first counted there, with
    the source offset of the last event added (watermark). Monotonic: counters only grow, and a replay
    skips what the watermark says is in. What /metrics serves as `sqm_kpi_*_total` (api/metrics.py)."""

    wm: int
    v: list[float]  # indexed like stream.folds.FIELDS

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "v": {n: x for n, x in zip(FIELDS, self.v, strict=True) if x}})

    @classmethod
    def from_bytes(cls, raw: bytes) -> TotalValue:
        d = orjson.loads(raw)
        v: list[float] = [0] * len(FIELDS)
        for k, x in d["v"].items():
            i = IX.get(k)
            if i is not None:
                v[i] = x
        return cls(int(d["o"]), v)


@dataclass(frozen=True, slots=True)
class ForecastValue:
    """`expected[i]`: the count expected in the quarter hour from `start + 900 i` (UTC), made at `made`."""

    made: float
    start: int
    expected: list[float]

    def at(self, interval: int) -> float | None:
        """The expectation for the quarter hour starting at `interval`, if this forecast covers it."""
        i, r = divmod(interval - self.start, 900)
        return self.expected[i] if r == 0 and 0 <= i < len(self.expected) else None

    def to_bytes(self) -> bytes:
        return orjson.dumps({"made": self.made, "start": self.start, "expected": self.expected})

    @classmethod
    def from_bytes(cls, raw: bytes) -> ForecastValue:
        d = orjson.loads(raw)
        return cls(float(d["made"]), int(d["start"]), [float(x) for x in d["expected"]])


@dataclass(slots=True)
class Comment:
    """A survey response with a comment and what it says (voice.md "Per comment"), for the board and
    /v1/comments. `language` is the reduced or detected one (zh, en, other)."""

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
    survey_id: str = ""
    ces: int | None = None
    sentiment: float = 0.0
    label: str = "neutral"
    topics: tuple[str, ...] = ()
    mismatch: bool = False

    def scopes(self) -> list[str]:
        out = ["all", f"team:{self.team}", f"channel:{self.channel}", f"tier:{self.tier}"]
        if self.agent:
            out.append(f"agent:{self.agent}")
        return out

    @property
    def low(self) -> bool:
        """A low score: csat <= 2 or nps <= 6 (the board's comments panel lists these and the negative ones)."""
        return (self.csat is not None and self.csat <= 2) or (self.nps is not None and self.nps <= 6)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "ts": self.ts, "team": self.team, "channel": self.channel,
                             "tier": self.tier, "agent": self.agent, "csat": self.csat, "nps": self.nps,
                             "text": self.text, "language": self.language, "id": self.survey_id, "ces": self.ces,
                             "s": self.sentiment, "l": self.label, "tp": list(self.topics), "mm": self.mismatch})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Comment:
        d = orjson.loads(raw)
        return cls(float(d["ts"]), d["team"], d["channel"], d["tier"], d.get("agent"), d.get("csat"), d.get("nps"),
                   d["text"], d.get("language"), int(d["o"]), d.get("id", ""), d.get("ces"), float(d.get("s", 0.0)),
                   d.get("l", ""), tuple(d.get("tp", ())), bool(d.get("mm", False)))

    @property
    def read(self) -> bool:
        """False for a record of the version before comments were read (a low-score one, no label): it is
        not listed (it leaves within 24 h)."""
        return bool(self.label)


TOPICS_PER_BUCKET = 24  # words beyond the topic lexicon's keys one scope's bucket counts; further ones: `dropped`


@dataclass(slots=True)
class TopicBucket:
    """One scope's comments in one bucket of one source partition (voice.md "Topics"): the comments,
    the negative and neutral ones among them (`nn`, the topics' denominator), and how many of those
    name each topic: every key of the topic lexicon (`known`), and at most TOPICS_PER_BUCKET fallback
    words (a comment's rarest word); the comments on further words count in `dropped`."""

    wm: int = -1
    comments: int = 0
    nn: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    dropped: int = 0

    def add(self, label: str, topics: tuple[str, ...], known: Container[str] = ()) -> None:
        self.comments += 1
        if label == "positive":
            return
        self.nn += 1
        for t in topics:
            if t in self.counts:
                self.counts[t] += 1
            elif t in known or sum(k not in known for k in self.counts) < TOPICS_PER_BUCKET:
                self.counts[t] = 1
            else:
                self.dropped += 1

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "c": self.comments, "nn": self.nn, "t": self.counts, "x": self.dropped})

    @classmethod
    def from_bytes(cls, raw: bytes) -> TopicBucket:
        d = orjson.loads(raw)
        return cls(int(d["o"]), int(d["c"]), int(d["nn"]), {str(k): int(v) for k, v in d["t"].items()},
                   int(d.get("x", 0)))


#: no record sqm writes is larger (key + value): the contract's field limits bound every other record
#: to a few kilobytes, and dedupe chunks are split at DEDUPE_RECORD_MAX. Far below Kafka's default
#: message.max.bytes (about 1 MB) and the producer batch (512 KiB).
MAX_RECORD_BYTES = 256 * 1024
DEDUPE_RECORD_MAX = 128 * 1024  # bytes of a dedupe chunk's value: far below any broker's message limit


@dataclass(frozen=True, slots=True)
class DedupeChunk:
    """Part of a dedupe run: `n` fingerprints (sorted, little-endian uint64), then their offsets from
    `base` (little-endian uint32). Each chunk repeats the run's newest event time `exp`, its `base`,
    its number of chunks and its merge level, so that any subset of a run's chunks is a valid run.

    Binary, 12 bytes an id: `to_bytes()` is the 28-byte header then `body`; `from_bytes` does not copy.
    """

    exp: float
    base: int
    chunks: int
    level: int
    body: bytes | memoryview  # n*8 bytes of fingerprints, then n*4 bytes of offsets

    HEADER: ClassVar[struct.Struct] = struct.Struct("<4sdqII")
    MAGIC: ClassVar[bytes] = b"sqd1"

    def __len__(self) -> int:
        return len(self.body) // 12

    def to_bytes(self) -> bytes:
        return self.HEADER.pack(self.MAGIC, self.exp, self.base, self.chunks, self.level) + bytes(self.body)

    @classmethod
    def from_bytes(cls, raw: bytes) -> DedupeChunk:
        magic, exp, base, chunks, level = cls.HEADER.unpack_from(raw)
        body = memoryview(raw)[cls.HEADER.size:]
        if magic != cls.MAGIC or len(body) % 12:
            raise ValueError(f"not a dedupe chunk ({len(raw)} bytes)")
        return cls(exp, base, chunks, level, body)


@dataclass(slots=True)
class DedupeBatch:
    """The previous format of dedupe records (JSON, read only to load them): the event ids first seen
    in one batch, with their offsets; `exp` is the newest event time."""

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
    over: dict[str, int] = field(default_factory=dict)  # events counted under `<kind>:other`, by kind
    evicted: dict[str, int] = field(default_factory=dict)  # live tickets / calls dropped for the count bound

    def to_bytes(self) -> bytes:
        return orjson.dumps({"o": self.wm, "events": self.events, "dead": self.dead, "late": self.late,
                             "dup": self.dup, "over": self.over, **({"evicted": self.evicted} if self.evicted else {})})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Counters:
        d = orjson.loads(raw)
        return cls(int(d["o"]), dict(d["events"]), dict(d["dead"]), int(d["late"]), int(d["dup"]),
                   dict(d.get("over", {})), dict(d.get("evicted", {})))


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
