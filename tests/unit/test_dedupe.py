"""Dedupe by event id (stream/dedupe.py): agrees with a dict, survives reloads and cut writes, expires,
keeps every record under the size cap; and through PartitionState, duplicates are counted once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loadgen import ticket
from stream import dedupe
from stream.dedupe import DedupeIndex, Filter
from stream.folds import KpiConfig
from stream.processor import Processor
from stream.records import DEDUPE_RECORD_MAX, DedupeBatch, DedupeChunk, DedupeKey, Record, decode_key, encode_key
from stream.state import DEDUPE_HORIZON_S
from tests.support.fakes import MemorySink
from tests.support.pipeline import NOW, to_messages, view_of

# small enough that a few dozen ids go through every path: batch records, sealing, merges of several
# levels, final runs, runs of several chunks written over several flushes, a filter that says "maybe"
SMALL: dict[str, Any] = {"CHUNK_IDS": 3, "YOUNG_BATCHES": 2, "YOUNG_MAX": 12, "FANOUT": 2, "MAX_RUN": 40,
                         "SMALL_RUN": 6, "MAX_SPAN_S": 40.0, "CHUNKS_PER_FLUSH": 2, "FILTER_MIN": 8}


@contextmanager
def small() -> Iterator[None]:
    with mock.patch.multiple(dedupe, **SMALL):
        yield


def loaded(log: list[Record], topic: str = "tickets", p: int = 0) -> DedupeIndex:
    """What a restarted worker rebuilds from the state topic."""
    idx = DedupeIndex(topic, p)
    recs = []
    for k, v in log:
        key = decode_key(k)
        assert isinstance(key, DedupeKey)
        recs.append((key, k, v))
    idx.load(recs)
    return idx


def live_keys(log: list[Record]) -> set[bytes]:
    """The keys a compacted topic keeps."""
    latest: dict[bytes, bytes | None] = {}
    for k, v in log:
        latest[k] = v
    return {k for k, v in latest.items() if v is not None}


class Model:
    """A DedupeIndex driven batch by batch and checked against a dict, with its records in `log`.

    An id older than an expiry cutoff may be forgotten, and is new again when it comes back ("reborn");
    whether a replay after a crash sees it forgotten depends on when expiry ran, as it did with the
    dict of ids, so reborn ids are only checked to come back with one of their offsets. Every other id
    must always be found at the offset of its original."""

    def __init__(self) -> None:
        self.idx = DedupeIndex("tickets", 0)
        self.log: list[Record] = []
        self.ref: dict[str, int] = {}  # id -> offset of the original
        self.ts: dict[str, float] = {}  # id -> event time of the original
        self.seen_at: dict[str, set[int]] = {}  # id -> every offset it was remembered at
        self.reborn: set[str] = set()
        self.floor = float("-inf")  # the highest expiry cutoff so far: ids older may be forgotten
        self.offset = 0
        self.batches: list[list[tuple[str, int, float]]] = []

    def strict(self, eid: str) -> bool:
        return eid not in self.reborn and self.ts[eid] >= self.floor

    def apply(self, batch: list[tuple[str, int, float]]) -> None:
        for eid, o, ts in batch:
            got = self.idx.first(eid, o, ts)
            if eid not in self.ref:
                assert got == o, (eid, got, o)
            elif self.strict(eid):
                assert got == self.ref[eid], (eid, got, self.ref[eid])
            else:
                assert got in self.seen_at[eid] | {o}, (eid, got, o)
                if got == o and o not in self.seen_at[eid]:
                    self.reborn.add(eid)
            if got == o:
                self.ref[eid], self.ts[eid] = o, ts
                self.seen_at.setdefault(eid, set()).add(o)

    def write(self, records: list[Record]) -> None:
        for k, v in records:
            assert len(k) < 200 and (v is None or len(v) <= DEDUPE_RECORD_MAX)
        self.log.extend(records)

    def batch(self, ids: list[str], ts: float) -> list[tuple[str, int, float]]:
        out = []
        for eid in ids:
            out.append((eid, self.offset, ts))
            self.offset += 1
        self.batches.append(out)
        return out

    def check(self, idx: DedupeIndex) -> None:
        for eid, o in self.ref.items():
            got = idx.find(eid)
            if self.strict(eid):
                assert got == o, (eid, got, o)
            else:
                assert got is None or got in self.seen_at[eid], (eid, got, o)


step = st.one_of(
    st.tuples(st.just("batch"), st.lists(st.integers(0, 60), max_size=12), st.floats(0, 15)),
    st.tuples(st.just("expire"), st.sampled_from([10.0, 30.0, 80.0])),
    st.tuples(st.just("reload")),
    st.tuples(st.just("crash"), st.lists(st.integers(0, 60), max_size=12), st.floats(0, 1), st.integers(0, 2)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=40))
def test_agrees_with_a_dict_through_flushes_merges_expiry_reloads_and_cut_writes(steps: list[Any]) -> None:
    with small():
        m, clock = Model(), 100.0
        for s in steps:
            if s[0] in ("batch", "crash"):
                clock += s[2] if s[0] == "batch" else 5.0
                b = m.batch([f"id-{i}" for i in s[1]], clock)
                m.apply(b)
                records = m.idx.flush()
                if s[0] == "batch":
                    m.write(records)
                    continue
                # cut after a random part of the records, restart, replay from an earlier batch
                m.write(records[:int(len(records) * s[2])])
                m.idx = loaded(m.log)
                for replay in m.batches[-1 - s[3]:]:
                    m.apply(replay)
                    m.write(m.idx.flush())
            elif s[0] == "expire":
                cutoff = clock - s[1]
                m.write([(k, None) for k in m.idx.expire(cutoff)])
                m.floor = max(m.floor, cutoff)
            else:
                m.idx = loaded(m.log)
            m.check(m.idx)
        m.check(loaded(m.log))
        # everything expires, and the topic keeps no dedupe record at all
        m.write([(k, None) for k in m.idx.expire(float("inf"))])
        m.write(m.idx.flush())
        m.write(m.idx.flush())
        assert len(m.idx) == 0
        assert live_keys(m.log) == set()


def test_within_a_batch_across_batches_after_reload_and_forgotten_after_expiry() -> None:
    idx = DedupeIndex("tickets", 0)
    assert idx.first("a", 10, 100.0) == 10
    assert idx.first("a", 11, 100.0) == 10  # the same micro-batch
    log = idx.flush()
    for i in range(20, 20 + 2 * dedupe.YOUNG_BATCHES):
        idx.first(f"x{i}", i, 100.0)
        log += idx.flush()  # sealed into runs on the way
    assert idx.runs and idx.first("a", 70, 200.0) == 10  # another batch
    again = loaded(log)
    assert again.first("a", 71, 200.0) == 10 and again.first("a", 10, 100.0) == 10  # a replay of the original
    log += [(k, None) for k in again.expire(200.0 - 1)]  # `a` is older than the cutoff
    assert again.find("a") is None and again.first("a", 72, 300.0) == 72  # new again
    log += again.flush()
    assert loaded(log).find("a") == 72


def test_records_stay_under_the_cap_with_long_ids_and_large_batches() -> None:
    idx = DedupeIndex("surveys", 5)
    rnd = random.Random(1)
    biggest, offset = 0, 0
    for batch in (50_000, 2000, 2000, 30_000, *[2000] * 20):
        for _ in range(batch):
            eid = rnd.randbytes(64).hex()  # 128 characters
            assert idx.first(eid, offset, 1000.0) == offset
            offset += 1
        out = idx.flush()
        for k, v in out:
            assert isinstance(decode_key(k), DedupeKey) and len(k) < 200
            assert v is None or len(v) <= DEDUPE_RECORD_MAX
            biggest = max(biggest, len(v or b""))
        # a flush writes the batch, plus at most CHUNKS_PER_FLUSH chunks of sealed or merged runs
        assert sum(len(v or b"") for _, v in out) <= (batch * 12 + 1000) + dedupe.CHUNKS_PER_FLUSH * DEDUPE_RECORD_MAX
    assert biggest > DEDUPE_RECORD_MAX // 2  # the cap was reached, so records were split by size


def test_records_of_the_previous_format_are_read_and_tombstoned_on_expiry() -> None:
    old_key = encode_key(DedupeKey("calls", 2, 40))
    log: list[Record] = [(old_key, DedupeBatch(500.0, {"c1": 40, "c2": 41}).to_bytes())]
    idx = loaded(log, "calls", 2)
    assert idx.first("c2", 90, 600.0) == 41 and idx.first("c3", 91, 600.0) == 91
    assert old_key in idx.expire(550.0)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300), st.integers(0, 5000))
def test_the_filter_never_says_no_to_an_id_it_holds(fps: list[int], capacity: int) -> None:
    f = Filter(capacity)
    f.add(np.sort(np.array(fps, dtype=np.uint64)))
    assert all(f.maybe(x) for x in fps)


def test_the_filter_says_maybe_rarely_at_capacity() -> None:
    rng = np.random.default_rng(3)
    f = Filter(100_000)
    f.add(np.sort(rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True)))
    others = rng.integers(0, 2**64 - 1, 100_000, dtype=np.uint64, endpoint=True).tolist()
    assert sum(f.maybe(x) for x in others) / len(others) < 0.01


# -- through the worker's path ----------------------------------------------------------------------
async def test_duplicates_are_counted_once_in_a_batch_across_batches_and_after_a_restart() -> None:
    e1 = ticket("ticket.created", NOW - 60, NOW - 60, "t1")
    e2 = ticket("ticket.created", NOW - 50, NOW - 50, "t2")
    msgs = to_messages([e1, dict(e1), e2, dict(e2), dict(e1)], partitions=1)
    sink = MemorySink()
    await Processor(sink, KpiConfig(), 60, 7 * 86400).process(msgs[:2], now=NOW)  # e1 twice in one batch
    await Processor(sink, KpiConfig(), 60, 7 * 86400).process(msgs[2:4], now=NOW)  # restarted: reloads
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    await proc.process(msgs[4:], now=NOW)
    await proc.process(msgs[:2], now=NOW)  # a replay of the first batch: no change
    view = view_of(sink)
    assert view.kpis("all", "1h", now=NOW)["tickets_created"] == (2.0, 2)
    assert view.pipeline_counters().dup == 3


async def test_ids_are_forgotten_after_the_horizon_and_their_records_tombstoned() -> None:
    sink = MemorySink()
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    events = [ticket("ticket.created", NOW - 100, NOW - 100, f"t{i}") for i in range(300)]
    with small():
        for i in range(0, 300, 10):
            await proc.process(to_messages(events, partitions=1)[i:i + 10], now=NOW)
        st_ = proc.states[0]
        assert st_.seen["tickets"].runs  # sealed and merged on the way
        await proc.process([], now=NOW + DEDUPE_HORIZON_S)  # expiry
        await proc.process([], now=NOW + DEDUPE_HORIZON_S)  # the tombstones of replaced records
    assert len(st_.seen["tickets"]) == 0
    assert not any(isinstance(decode_key(k), DedupeKey) for k in live_keys(sink.log[0]))


def test_chunk_values_are_binary_twelve_bytes_an_id() -> None:
    idx = DedupeIndex("tickets", 0)
    for i in range(1000):
        idx.first(f"id-{i}", i, 10.0)
    (k, v), = idx.flush()
    assert v is not None and len(v) == DedupeChunk.HEADER.size + 12 * 1000
    assert orjson.loads(k)[:3] == ["d", "tickets", 0]
