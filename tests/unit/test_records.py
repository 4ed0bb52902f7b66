"""The record schema (stream/records.py): every kind round-trips, whatever its strings hold."""

from __future__ import annotations

import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.folds import Acc
from stream.records import (
    AlertKey,
    BucketKey,
    BucketValue,
    CallKey,
    Comment,
    CommentKey,
    Counters,
    CountersKey,
    DedupeBatch,
    DedupeChunk,
    DedupeKey,
    Heartbeat,
    HeartbeatKey,
    SentinelKey,
    TicketKey,
    decode_key,
    encode_key,
)

# Any text a producer can send in valid JSON: quotes, brackets, unicode, NUL and other control
# characters, U+2028. (Lone surrogates cannot be in valid UTF-8, so no JSON event carries them.)
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=130) | st.sampled_from(
    ['team:a|b"c', "]", '["b"', "\x00", "\u2028\u2029", "客服-一组", "emoji 🎧", "\\", "null", "[1,2]"])
ints = st.integers(min_value=0, max_value=2**53)

keys = st.one_of(
    st.builds(BucketKey, text, ints, text, ints),
    st.builds(TicketKey, ints, text),
    st.builds(CallKey, ints, text),
    st.builds(CommentKey, ints, text),
    st.builds(DedupeKey, text, ints, ints),  # the previous format's key
    st.builds(DedupeKey, text, ints, ints, text.filter(bool), ints),
    st.builds(CountersKey, text, ints),
    st.builds(HeartbeatKey, text),
    st.builds(AlertKey, text, text),
    st.builds(SentinelKey, text),
)


@given(keys)
def test_every_key_round_trips(key: object) -> None:
    assert decode_key(encode_key(key)) == key  # type: ignore[arg-type]


@given(st.binary(max_size=64) | st.sampled_from([b"[]", b'["b"]', b'["t", "1", "x"]', b'["b","t",true,"s",1]',
                                                   b'["x", 1]', b"{}", b"null", b'["w", 3]']))
def test_anything_else_is_not_a_key(raw: bytes) -> None:
    key = decode_key(raw)
    assert key is None or decode_key(encode_key(key)) == key


def test_malformed_keys_decode_to_none() -> None:
    for raw in (b"", None, b"[]", b'["b", "t", 1, "s"]', b'["t", "1", "x"]', b'["b","t",true,"s",1]', b'["q"]'):
        assert decode_key(raw) is None, raw


@given(st.dictionaries(text, ints, max_size=5), st.floats(min_value=0, max_value=4e9))
def test_values_round_trip(ids: dict[str, int], ts: float) -> None:
    acc = Acc()
    acc.v[0], acc.v[3] = 3, 12.5
    acc.fr_sketch.add(12.5)
    b = BucketValue.from_bytes(BucketValue(7, acc).to_bytes())
    assert b.wm == 7 and b.acc.v == acc.v and b.acc.fr_sketch.bins == acc.fr_sketch.bins
    d = DedupeBatch.from_bytes(DedupeBatch(ts, ids).to_bytes())
    assert (d.exp, d.ids) == (ts, ids)
    c = Counters(5, {"ticket.created": 2}, {"invalid": 1}, 3, 4)
    assert Counters.from_bytes(c.to_bytes()) == c
    m = Comment(ts, "t", "chat", "vip", None, 1, None, '<script>alert(1)</script> \u2028 "x"', "zh-CN", 3)
    assert Comment.from_bytes(m.to_bytes()) == m
    hb = Heartbeat(ts=ts, pid=1, role="kpis", assigned=(0, 2), alerts_firing={"warning": 1}, alert_partitions=(1,))
    assert Heartbeat.from_bytes(hb.to_bytes()) == hb


@given(st.floats(allow_nan=False), st.integers(-2**63, 2**63 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.binary(max_size=60).map(lambda b: b[:len(b) - len(b) % 12]))
def test_dedupe_chunks_round_trip(exp: float, base: int, chunks: int, level: int, body: bytes) -> None:
    raw = DedupeChunk(exp, base, chunks, level, body).to_bytes()
    assert len(raw) == DedupeChunk.HEADER.size + len(body)
    c = DedupeChunk.from_bytes(raw)
    assert (c.exp, c.base, c.chunks, c.level, bytes(c.body)) == (exp, base, chunks, level, body)
    assert len(c) == len(body) // 12


def test_a_dedupe_chunk_is_refused_unless_it_is_one() -> None:
    good = DedupeChunk(1.0, 2, 1, 0, b"x" * 12).to_bytes()
    for raw in (b"", b"{}", good[:-1], b"sqd2" + good[4:]):
        with pytest.raises((ValueError, struct.error)):
            DedupeChunk.from_bytes(raw)
    with pytest.raises(ValueError):
        encode_key(DedupeKey("t", 1, 2, "", 3))  # the previous format had no chunks


def test_heartbeat_freshness_and_unknown_fields() -> None:
    hb = Heartbeat.from_bytes(orjson.dumps({"ts": 100.0, "assigned": [1], "from_a_newer_worker": True}))
    assert hb.assigned == (1,) and hb.is_fresh(119.0) and not hb.is_fresh(120.0)
