"""The event contract: every rule of events.md, and that bad input is data, never an exception."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.loadgen import call, iso, survey, ticket
from stream.clock import utcnow
from stream.events import MAX_BYTES, Rejected, decode

NOW = time.time()


def _dec(obj: object, topic: str | None = None) -> object:
    return decode(orjson.dumps(obj), now=utcnow(), topic_kind=topic)


def test_spec_example_is_valid() -> None:
    raw = (b'{"event_id": "tk-81723-created", "type": "ticket.created", "ts": "2026-11-22T05:45:04Z",'
           b' "ticket_id": "81723", "created_at": "2026-11-22T05:45:04Z", "team": "billing",'
           b' "channel": "chat", "customer_tier": "vip", "is_complaint": true}')
    ev = decode(raw, now=utcnow())
    assert not isinstance(ev, Rejected)
    assert ev.customer_tier == "vip" and ev.is_complaint is True and ev.priority == "normal"


def test_defaults() -> None:
    ev = _dec(call("call.offered", NOW, "c1"))
    assert ev.channel == "phone" and ev.customer_tier == "standard" and ev.schema_version == 1
    ev = _dec(ticket("ticket.first_response", NOW, NOW - 5, "t", by_bot=True))
    assert ev.agent is None and ev.by_bot is True


def test_offsets_other_than_utc() -> None:
    ev = ticket("ticket.created", NOW, NOW, "t")
    ev["ts"] = ev["created_at"] = "2026-11-22T13:45:04+08:00"
    assert not isinstance(_dec(ev), Rejected)


BAD = [
    ("not_json", b"\xff\xfe garbage"),
    ("not_json", b'{"event_id": '),
    ("not_object", b"[1, 2]"),
    ("not_object", b'"text"'),
    ("unknown_type", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "type": "ticket.deleted"})),
    ("unknown_type", orjson.dumps({"event_id": "x"})),
    ("invalid", orjson.dumps({k: v for k, v in ticket("ticket.created", NOW, NOW, "t").items() if k != "team"})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "ts": "2026-11-22T05:45:04"})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "ts": 1763790304})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "is_complaint": "yes"})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "priority": "asap"})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "event_id": ""})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "event_id": "x" * 129})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "team": "t" * 129})),
    ("invalid", orjson.dumps({**ticket("ticket.created", NOW, NOW, "t"), "schema_version": "1"})),
    ("invalid", orjson.dumps(ticket("ticket.first_response", NOW, NOW, "t"))),  # agent missing, not bot
    ("invalid", orjson.dumps(ticket("ticket.resolved", NOW, NOW, "t", agent="a", contacts=0))),
    ("invalid", orjson.dumps(ticket("ticket.resolved", NOW, NOW, "t", agent="a", contacts=1.5))),
    ("invalid", orjson.dumps(call("call.answered", NOW, "c", agent="a", wait_s=-1))),
    ("invalid", orjson.dumps(call("call.answered", NOW, "c", agent="a", wait_s="3"))),
    ("invalid", orjson.dumps(call("call.answered", NOW, "c", wait_s=3))),
    ("invalid", orjson.dumps(call("call.ended", NOW, "c", agent="a", talk_s=1, hold_s=0, wrap_s=0))),
    ("invalid", orjson.dumps(survey(NOW, "s"))),  # no score
    ("invalid", orjson.dumps(survey(NOW, "s", csat=6))),
    ("invalid", orjson.dumps(survey(NOW, "s", csat=0))),
    ("invalid", orjson.dumps(survey(NOW, "s", nps=11))),
    ("invalid", orjson.dumps(survey(NOW, "s", ces=8))),
    ("invalid", orjson.dumps(survey(NOW, "s", csat=4.0))),
    ("invalid", orjson.dumps(survey(NOW, "s", csat=True))),
    ("invalid", orjson.dumps(survey(NOW, "s", csat=4, comment="x" * 4001))),
    ("invalid", orjson.dumps(survey(NOW, "s", csat=4, language="not a tag!"))),
    ("future_ts", orjson.dumps(ticket("ticket.created", NOW + 400, NOW, "t"))),
    ("oversize", orjson.dumps(survey(NOW, "s", csat=4, comment="x" * 3000, pad="y" * MAX_BYTES))),
]


@pytest.mark.parametrize(("reason", "raw"), BAD, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD)])
def test_bad_input_is_rejected_with_reason(reason: str, raw: bytes) -> None:
    # judged at the time the cases were built: the suite may reach this test minutes later
    out = decode(raw, now=datetime.fromtimestamp(NOW, UTC))
    assert isinstance(out, Rejected), out
    assert out.reason == reason, out.detail
    assert out.detail


def test_wrong_topic() -> None:
    out = _dec(survey(NOW, "s", csat=4), topic="tickets")
    assert isinstance(out, Rejected) and out.reason == "wrong_topic"


def test_future_within_tolerance_is_accepted() -> None:
    assert not isinstance(_dec(ticket("ticket.created", NOW + 200, NOW, "t")), Rejected)


def test_detail_names_the_field() -> None:
    out = _dec(call("call.answered", NOW, "c", agent="a", wait_s=-1))
    assert isinstance(out, Rejected) and "wait_s" in out.detail


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decode(raw, now=utcnow())


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=6)))
def test_arbitrary_json_never_raises(obj: object) -> None:
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        return
    decode(raw, now=utcnow())


def test_iso_helper_roundtrip() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert datetime.fromisoformat(iso(1.5)).timestamp() == 1.5
