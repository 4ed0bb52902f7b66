"""The event contract v1 (docs/contract.md) as pydantic models, and `decode` for raw bytes.

Pure: no I/O, no clock (the caller passes `now`). Bad input is data, never an exception:

    >>> from datetime import UTC
    >>> r = decode(b'{"type": "nope"}', now=datetime.now(UTC))
    >>> isinstance(r, Rejected), r.reason
    (True, 'unknown_type')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

MAX_BYTES = 64 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_DURATION_S = 7 * 86400.0  # wait, talk, hold, wrap: a week is beyond any real call
MAX_CONTACTS = 1000
MAX_TICKET_AGE = timedelta(days=400)  # created_at at most this long before ts

#: characters no id or dimension may contain: C0 and C1 controls (NUL, CR, LF, ESC ...), DEL, the
#: line and paragraph separators (they break e-mail headers, logs and JSON-in-JS) and the bidi
#: embedding/override/isolate controls (they make a name display as another). Written with escapes
#: that Python's `re` and pydantic-core's Rust regex read alike, so validation stays in Rust.
FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_NAME = f"^[^{FORBIDDEN}]+$"
#: free text (survey comments) may also hold tab, LF and CR, nothing else of the above
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"


def _rfc3339_string(v: Any) -> Any:
    # pydantic would also take epoch numbers; the contract says RFC 3339 text with an offset
    if not isinstance(v, str):
        raise ValueError("must be an RFC 3339 string with an offset")
    return v


_BCP47 = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
_BAD_NAME = re.compile(f"[{FORBIDDEN}]")
_BAD_TEXT = re.compile(_TEXT.replace("^[^", "[").replace("]*$", "]"))


def is_clean_name(value: str) -> bool:
    """True when `value` holds none of the characters ids and dimensions may not contain."""
    return _BAD_NAME.search(value) is None


def is_clean_text(value: str) -> bool:
    """True when free text holds none of them except tab, LF and CR."""
    return _BAD_TEXT.search(value) is None


Dim = Annotated[str, Field(min_length=1, max_length=128, pattern=_NAME)]
Duration = Annotated[StrictFloat, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]


class _Envelope(BaseModel):
    # leading and trailing white space is dropped from every text ("Billing " is "Billing"), so a
    # value of spaces only is empty and refused
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    event_id: Dim
    ts: Timestamp
    schema_version: Annotated[StrictInt, Field(ge=1)] = 1
    customer_tier: Dim = "standard"
    customer_id: Dim | None = None
    scenario: Dim | None = None


class _TicketBase(_Envelope):
    ticket_id: Dim
    created_at: Timestamp
    team: Dim
    channel: Dim
    agent: Dim | None = None

    @model_validator(mode="after")
    def _created_before_ts(self) -> _TicketBase:
        if self.created_at - self.ts > FUTURE_TOLERANCE:
            raise ValueError("created_at is after ts (by more than 5 minutes)")
        if self.ts - self.created_at > MAX_TICKET_AGE:
            raise ValueError("created_at is more than 400 days before ts")
        return self

    @property
    def duration_s(self) -> float:
        """`ts - created_at` in seconds; clock skew (negative) is clamped to 0."""
        return max(0.0, (self.ts - self.created_at).total_seconds())


class TicketCreated(_TicketBase):
    type: Literal["ticket.created"]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    is_complaint: StrictBool = False


class TicketFirstResponse(_TicketBase):
    type: Literal["ticket.first_response"]
    by_bot: StrictBool = False

    @model_validator(mode="after")
    def _agent_unless_bot(self) -> TicketFirstResponse:
        if not self.by_bot and self.agent is None:
            raise ValueError("agent is required unless by_bot is true")
        return self


class TicketResolved(_TicketBase):
    type: Literal["ticket.resolved"]
    contacts: Annotated[StrictInt, Field(ge=1, le=MAX_CONTACTS)]
    by_bot: StrictBool = False
    is_complaint: StrictBool = False

    @model_validator(mode="after")
    def _agent_unless_bot(self) -> TicketResolved:
        if not self.by_bot and self.agent is None:
            raise ValueError("agent is required unless by_bot is true")
        return self


class TicketReopened(_TicketBase):
    type: Literal["ticket.reopened"]


class _CallBase(_Envelope):
    call_id: Dim
    queue: Dim
    team: Dim
    channel: Dim = "phone"
    agent: Dim | None = None


class CallOffered(_CallBase):
    type: Literal["call.offered"]


class CallAnswered(_CallBase):
    type: Literal["call.answered"]
    agent: Dim
    wait_s: Duration


class CallAbandoned(_CallBase):
    type: Literal["call.abandoned"]
    wait_s: Duration


class CallEnded(_CallBase):
    type: Literal["call.ended"]
    agent: Dim
    talk_s: Duration
    hold_s: Duration
    wrap_s: Duration
    resolved: StrictBool


class SurveySubmitted(_Envelope):
    type: Literal["survey.submitted"]
    survey_id: Dim
    team: Dim
    channel: Dim
    agent: Dim | None = None
    ticket_id: Dim | None = None
    call_id: Dim | None = None
    csat: Annotated[StrictInt, Field(ge=1, le=5)] | None = None
    nps: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    ces: Annotated[StrictInt, Field(ge=1, le=7)] | None = None
    comment: Annotated[str, Field(max_length=4000, pattern=_TEXT)] | None = None
    language: Annotated[str, Field(max_length=35, pattern=_BCP47)] | None = None

    @model_validator(mode="after")
    def _one_score(self) -> SurveySubmitted:
        if self.csat is None and self.nps is None and self.ces is None:
            raise ValueError("at least one of csat, nps, ces is required")
        return self


#: the five agent states of contract 1.2; a vendor's own names reach them through the state map
AgentStateName = Literal["available", "on_contact", "after_contact_work", "away", "offline"]
AGENT_STATES: tuple[str, ...] = get_args(AgentStateName)
MAX_AGENT_QUEUES = 50
Reason = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME)]


class AgentStateChanged(_Envelope):
    """`agent.state` (contract 1.2): the agent's state from `ts` until its next event."""

    type: Literal["agent.state"]
    agent: Dim
    team: Dim
    state: AgentStateName
    reason: Reason | None = None
    queues: Annotated[tuple[Dim, ...], Field(max_length=MAX_AGENT_QUEUES)] | None = None  # None: unchanged
    channel: Dim | None = None


TicketEvent = TicketCreated | TicketFirstResponse | TicketResolved | TicketReopened
CallEvent = CallOffered | CallAnswered | CallAbandoned | CallEnded
Event = TicketEvent | CallEvent | SurveySubmitted | AgentStateChanged

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="type")])

#: which event types each source topic (by its suffix after the prefix) may carry
TYPES_BY_TOPIC: dict[str, frozenset[str]] = {
    "tickets": frozenset({"ticket.created", "ticket.first_response", "ticket.resolved", "ticket.reopened"}),
    "calls": frozenset({"call.offered", "call.answered", "call.abandoned", "call.ended"}),
    "surveys": frozenset({"survey.submitted"}),
    "agents": frozenset({"agent.state"}),
}
KEY_FIELD = {"tickets": "ticket_id", "calls": "call_id", "surveys": "survey_id", "agents": "agent"}
TOPIC_OF_TYPE = {t: topic for topic, types in TYPES_BY_TOPIC.items() for t in types}

#: every reason a message can be rejected with: the label values of the dead-letter counter
REASONS = (
    "oversize",
    "not_json",
    "not_object",
    "unknown_type",
    "wrong_topic",
    "invalid",
    "future_ts",
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that breaks the contract: `reason` is one of REASONS, `detail` says what and where."""

    reason: str
    detail: str


def decode(raw: bytes, *, now: datetime, topic_kind: str | None = None,
           state_map: Mapping[str, str] | None = None) -> Event | Rejected:
    """Validate one message against the contract. `topic_kind` ('tickets', ...) checks the type belongs;
    `state_map` turns a vendor's agent state names into the contract's five (`validate`)."""
    if len(raw) > MAX_BYTES:
        return Rejected("oversize", f"{len(raw)} bytes > {MAX_BYTES}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected("not_json", str(exc)[:200])
    return validate(obj, now=now, topic_kind=topic_kind, state_map=state_map)


def validate(obj: Any, *, now: datetime, topic_kind: str | None = None,
             state_map: Mapping[str, str] | None = None) -> Event | Rejected:
    """Validate an already-parsed JSON value (used by HTTP ingest and `decode`).

    An `agent.state` whose `state` is a key of `state_map` counts as the state it maps to (as CXone
    maps ACD events to activities); any other name than the five is invalid:

    >>> from datetime import UTC
    >>> ev = {"event_id": "e1", "type": "agent.state", "ts": "2026-12-07T09:00:00Z", "agent": "a1",
    ...       "team": "tech", "state": "Not Ready"}
    >>> now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    >>> validate(ev, now=now, state_map={"Not Ready": "away"}).state
    'away'
    >>> validate(ev, now=now).reason
    'invalid'
    """
    if not isinstance(obj, dict):
        return Rejected("not_object", f"got {type(obj).__name__}")
    etype = obj.get("type")
    if not isinstance(etype, str) or etype not in TOPIC_OF_TYPE:
        return Rejected("unknown_type", f"type={etype!r}"[:200])
    if topic_kind is not None and TOPIC_OF_TYPE[etype] != topic_kind:
        return Rejected("wrong_topic", f"{etype} does not belong on the {topic_kind} topic")
    if etype == "agent.state" and state_map and isinstance(vendor := obj.get("state"), str) \
            and vendor not in AGENT_STATES and vendor in state_map:
        obj = {**obj, "state": state_map[vendor]}
    try:
        event = _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        return Rejected("invalid", _describe(exc))
    if event.ts - now > FUTURE_TOLERANCE:
        return Rejected("future_ts", f"ts {event.ts.isoformat()} is more than 5 minutes ahead")
    return event


_PATTERN_MSG = "contains a control character, U+2028/U+2029 or a bidi control (not allowed)"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "(event)"
        msg = _PATTERN_MSG if err["type"] == "string_pattern_mismatch" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)[:500]


def topic_kind_of(event: Event) -> str:
    """'tickets', 'calls', 'surveys' or 'agents'."""
    return TOPIC_OF_TYPE[event.type]


def key_of(event: Event) -> str:
    """The partitioning key of the contract (ticket_id, call_id, survey_id, agent)."""
    return str(getattr(event, KEY_FIELD[topic_kind_of(event)]))
