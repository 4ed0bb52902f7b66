"""The event ids one topic partition remembers for dedupe, and their records. Pure: no I/O, no clock.

    idx = DedupeIndex("tickets", p)
    if idx.first(event_id, offset, ts) != offset:   # the original is at another offset: a duplicate
        ...
    records = idx.flush()   # once per micro-batch, written before the batch's offsets are committed

An id is a 64-bit fingerprint with the offset it was first seen at. The newest (the open batch and up
to YOUNG_BATCHES flushed ones) are in a dict; older ones in *runs*, sorted numpy arrays of 12 bytes an
id that expire as a whole. A lookup reads the dict, then one word of a blocked Bloom filter over every
run; only on a "maybe" (a duplicate, or well under 1 % of the rest) are the runs searched, newest
first, through a radix directory each. Runs are merged LSM-style, FANOUT of a level into one of the
next, up to MAX_RUN ids or MAX_SPAN_S of event time: a day is a few dozen runs.

On the state topic a flush writes the batch's new ids as a record; every YOUNG_BATCHES flushes they
are sealed into a run: chunk records (`DedupeChunk`, contiguous fingerprint ranges of at most
`DEDUPE_RECORD_MAX` bytes) keyed by a digest of the run's content, so that a key always holds the same
bytes and any subset of a run's chunks loads as a valid run. A run made of others is written a few
chunks per flush, and the records it replaces are tombstoned one flush after its last chunk (once the
broker has it): some record always holds every remembered id. Loading sorts nothing but batch records.
Measured reasons: docs/design.md, "Dedupe: remembered event ids".
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import numpy.typing as npt
from xxhash import xxh3_64, xxh3_64_intdigest

from stream.records import DEDUPE_RECORD_MAX, DedupeBatch, DedupeChunk, DedupeKey, Record, encode_key

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]

CHUNK_IDS = (DEDUPE_RECORD_MAX - DedupeChunk.HEADER.size) // 12  # ids per chunk record
YOUNG_BATCHES = 64  # flushed batches kept in the dict before they are sealed into a run
YOUNG_MAX = 1 << 14  # ids in the dict that seal it whatever the number of batches (a dict costs ~100 B an id)
FANOUT = 4  # runs of one level merged into one of the next
MAX_RUN = 1 << 23  # ids: a larger merge would stop the worker for more than 0.25-0.5 s
MAX_SPAN_S = 3600.0  # event time a run above SMALL_RUN ids may span (its oldest ids are kept that much longer)
SMALL_RUN = 1 << 16
FINAL = 1 << 30  # the level of a run that is not merged again
CHUNKS_PER_FLUSH = 16  # chunk records of sealed or merged runs written per flush (about 1.5 MB)
FILTER_BITS = 16  # filter bits an id at the filter's capacity
FILTER_GROWTH = 1.5  # a rebuilt filter's capacity, in live ids
FILTER_MIN = 1024

_ONE = np.uint64(1)


def fingerprint(event_id: str) -> int:
    """The 64-bit fingerprint of an id: XXH3-64 of its UTF-8 bytes (a frozen format since xxHash 0.8,
    the same on every machine). 70 ns against 530 ns for blake2b here; resistance to chosen
    collisions would buy nothing, as a producer that wants an event dropped can send its id first."""
    return xxh3_64_intdigest(event_id.encode())


def _three_bits(low: U64) -> U64:
    six = np.uint64(63)
    out: U64 = (_ONE << (low & six)) | (_ONE << ((low >> np.uint64(6)) & six))
    out |= _ONE << ((low >> np.uint64(12)) & six)
    return out


# the filter bits of an id, by the low 18 bits of its fingerprint: reading this table per event costs
# half the arithmetic (2 MB, once per process)
_MASKS = _three_bits(np.arange(1 << 18, dtype=np.uint64))
_MASK_BITS = (1 << 18) - 1
_MASKS_MV = _MASKS.data


class Filter:
    """A blocked Bloom filter: three bits in one 64-bit word an id; never a false "no"."""

    __slots__ = ("capacity", "inserted", "n", "words", "mv")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(FILTER_MIN, capacity)
        self.inserted = 0
        self.n = -(-self.capacity * FILTER_BITS // 64)  # words; the word of an id is from its top 32 bits
        self.words = np.zeros(self.n, dtype=np.uint64)
        self.mv = self.words.data

    def add(self, fps: U64) -> None:
        """Add sorted fingerprints: one OR per touched word (their words are then in order too)."""
        if not len(fps):
            return
        slots = ((fps >> np.uint64(32)) * np.uint64(self.n)) >> np.uint64(32)
        starts = np.concatenate(([0], np.flatnonzero(slots[1:] != slots[:-1]) + 1))
        self.words[slots[starts]] |= np.bitwise_or.reduceat(_MASKS[fps & np.uint64(_MASK_BITS)], starts)
        self.inserted += len(fps)

    def maybe(self, fp: int) -> bool:
        return self.mv[((fp >> 32) * self.n) >> 32] & (m := _MASKS_MV[fp & _MASK_BITS]) == m


@dataclass(slots=True, eq=False)
class Run:
    """Sorted fingerprints with their offsets (`base` + offs), expiring as a whole after `exp`."""

    fps: U64
    offs: U32
    base: int
    exp: float  # the newest event time among its ids
    tag: str  # digest of the content, in its records' keys
    total: int  # chunk records of the whole run
    level: int = 0
    keys: list[bytes] = field(default_factory=list)  # its records on the topic (so far)
    next_chunk: int = 0  # chunks [next_chunk, total) are still to write
    retire: list[bytes] = field(default_factory=list)  # records it replaces: tombstoned once it is written
    last: int = field(init=False)  # the highest offset among its ids
    shift: int = field(init=False)
    dir: U32 = field(init=False)
    mv: tuple[memoryview, memoryview, memoryview] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.fps)
        self.last = self.base + int(self.offs.max())
        # a radix directory: the ids whose top `bits` bits are j are at [dir[j], dir[j+1]), 8-16 of them
        bits = (n >> 4).bit_length()
        self.shift = 64 - bits
        bounds = np.arange(1 << bits, dtype=np.uint64) << np.uint64(self.shift % 64)
        self.dir = np.append(np.searchsorted(self.fps, bounds), n).astype(np.uint32)
        self.mv = (self.fps.data, self.offs.data, self.dir.data)

    def __len__(self) -> int:
        return len(self.fps)

    def find(self, fp: int) -> int | None:
        fmv, omv, dmv = self.mv
        j = fp >> self.shift
        i = bisect_left(fmv, fp, dmv[j], hi := dmv[j + 1])
        return self.base + omv[i] if i < hi and fmv[i] == fp else None

    @property
    def nbytes(self) -> int:
        return self.fps.nbytes + self.offs.nbytes + self.dir.nbytes

    def chunk(self, topic: str, partition: int, i: int) -> Record:
        lo, hi = i * CHUNK_IDS, (i + 1) * CHUNK_IDS
        body = self.fps[lo:hi].astype("<u8", copy=False).tobytes() + self.offs[lo:hi].astype("<u4").tobytes()
        key = encode_key(DedupeKey(topic, partition, self.base, self.tag, i))
        return key, DedupeChunk(self.exp, self.base, self.total, self.level, body).to_bytes()


def _tag(exp: float, base: int, fps: bytes | memoryview, offs: bytes | memoryview) -> str:
    h = xxh3_64(struct.pack("<dq", exp, base))
    h.update(fps)
    h.update(offs)
    return h.hexdigest()


def make_run(fps: U64, offs: U32, base: int, exp: float, level: int = 0, *, unique: bool = False) -> Run:
    """A run of these ids (at `base` + offs), sorted; of equal fingerprints the first is kept."""
    order = np.argsort(fps, kind="stable")
    fps = fps[order]  # one at a time, and the caller keeps no reference: less memory at the peak
    offs = offs[order]
    del order
    if not unique and len(fps) > 1 and not (keep := np.concatenate(([True], fps[1:] != fps[:-1]))).all():
        fps, offs = fps[keep], offs[keep]
    if low := int(offs.min()):
        offs -= np.uint32(low)
        base += low
    return Run(fps, offs, base, exp, _tag(exp, base, fps.data, offs.data), -(-len(fps) // CHUNK_IDS), level)


def _relative(offsets: I64) -> tuple[U32, int]:
    return (offsets - (base := int(offsets.min()))).astype(np.uint32), base


def merge(runs: list[Run], level: int) -> Run:
    """One run of the ids of `runs` (oldest first, offsets within 2**32), to replace their records."""
    base = min(r.base for r in runs)
    out = make_run(np.concatenate([r.fps for r in runs]),
                   np.concatenate([r.offs + np.uint32(r.base - base) for r in runs]),
                   base, max(r.exp for r in runs), level)
    out.retire = [k for r in runs for k in (*r.keys, *r.retire)]
    return out


class DedupeIndex:
    """The ids of one source topic partition seen within the horizon, and their records."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.p = partition
        self.runs: list[Run] = []  # oldest first
        self.filter = Filter(0)
        self.recent: dict[int, int] = {}  # fingerprint -> offset: flushed young batches, then the open one
        self._open = 0  # the open batch: the last `_open` entries of `recent`
        self._open_exp = float("-inf")
        self._young: list[tuple[bytes, float]] = []  # the flushed batches in `recent`: key, newest event time
        self._retire_next: list[bytes] = []  # replaced records whose replacement the broker has
        self._changed = False  # runs were added since the last compaction

    def __len__(self) -> int:
        return len(self.recent) + sum(len(r) for r in self.runs)

    @property
    def nbytes(self) -> int:  # of the runs and the filter (`recent` is a dict of at most YOUNG_MAX ids)
        return sum(r.nbytes for r in self.runs) + self.filter.words.nbytes

    def first(self, event_id: str, offset: int, ts: float) -> int:
        """The offset of the original of `event_id`: `offset` when it is new (it is then remembered)."""
        fp = xxh3_64_intdigest(event_id.encode())
        recent = self.recent
        got = recent.get(fp)
        if got is not None:
            return got
        if self.runs:  # Filter.maybe, inlined: this runs once per event
            f = self.filter
            m = _MASKS_MV[fp & _MASK_BITS]
            if f.mv[((fp >> 32) * f.n) >> 32] & m == m:
                for run in reversed(self.runs):
                    got = run.find(fp)
                    if got is not None:
                        return got
        recent[fp] = offset
        self._open += 1
        if ts > self._open_exp:
            self._open_exp = ts
        return offset

    def find(self, event_id: str) -> int | None:
        """The offset `event_id` was first seen at, or None; remembers nothing."""
        fp = fingerprint(event_id)
        if fp in self.recent or not self.filter.maybe(fp):
            return self.recent.get(fp)
        return next((o for r in reversed(self.runs) if (o := r.find(fp)) is not None), None)

    def flush(self) -> list[Record]:
        """Tombstones of replaced records, the open batch's ids (all: its offsets are committed after
        this write), and a few chunks of new runs."""
        out: list[Record] = [(k, None) for k in self._retire_next]
        self._retire_next = []
        if self._open:
            out.extend(self._write_batch())
            if len(self._young) >= YOUNG_BATCHES or len(self.recent) >= YOUNG_MAX:
                self._seal_young()
        if self._changed:
            self._changed = False
            self._compact()
            if self.filter.inserted > self.filter.capacity:
                self._rebuild_filter()
        budget = CHUNKS_PER_FLUSH
        for run in [r for r in self.runs if r.next_chunk < r.total]:
            n = min(budget, run.total - run.next_chunk)
            out.extend(self._write(run, n))
            budget -= n
            if budget <= 0:
                break
        return out

    def _write_batch(self) -> list[Record]:
        """The open batch's ids, unsorted (a load sorts them). A micro-batch brings a few dozen ids to
        a topic partition: `array` costs a fraction of numpy here."""
        n, exp = self._open, self._open_exp
        self._open, self._open_exp = 0, float("-inf")
        fps = array("Q", islice(reversed(self.recent), n))
        offsets = list(islice(reversed(self.recent.values()), n))
        base = min(offsets)
        offs = array("I", [o - base for o in offsets])
        if sys.byteorder == "big":  # records are little-endian
            fps.byteswap()
            offs.byteswap()
        fb, ob = fps.tobytes(), offs.tobytes()
        total = -(-n // CHUNK_IDS)
        tag = _tag(exp, base, fb, ob)
        out: list[Record] = []
        for i in range(total):
            lo, hi = i * CHUNK_IDS, (i + 1) * CHUNK_IDS
            key = encode_key(DedupeKey(self.topic, self.p, base, tag, i))
            out.append((key, DedupeChunk(exp, base, total, 0, fb[lo * 8:hi * 8] + ob[lo * 4:hi * 4]).to_bytes()))
            self._young.append((key, exp))
        return out

    def _seal_young(self) -> None:
        """The flushed batches in the dict become one run (written by chunks, it then replaces them)."""
        n = len(self.recent) - self._open
        fps = np.fromiter(islice(self.recent, n), dtype=np.uint64, count=n)
        offs, base = _relative(np.fromiter(islice(self.recent.values(), n), dtype=np.int64, count=n))
        run = make_run(fps, offs, base, max(exp for _, exp in self._young), unique=True)
        run.retire = [k for k, _ in self._young]
        self.recent = dict(islice(self.recent.items(), n, None)) if self._open else {}
        self._young = []
        self._add_run(run)
        self.filter.add(run.fps)
        self._changed = True

    def _write(self, run: Run, n: int) -> list[Record]:
        recs = [run.chunk(self.topic, self.p, i) for i in range(run.next_chunk, run.next_chunk + n)]
        run.keys.extend(k for k, _ in recs)
        run.next_chunk += n
        if run.next_chunk == run.total:
            own = set(run.keys)  # after a crash a merge can rebuild a run it contains: keep its records
            self._retire_next.extend(k for k in run.retire if k not in own)
            run.retire = []
        return recs

    def _add_run(self, run: Run) -> None:
        """Append `run`; if a run of the same content is live (a merge made again after a crash), the
        one with all its records written stays, and the other's records are tombstoned."""
        for i, r in enumerate(self.runs):
            if r.tag == run.tag and r.base == run.base:
                if len(r.keys) == r.total:  # written by an earlier flush, so on the broker
                    own = set(r.keys)
                    self._retire_next.extend(k for k in run.retire if k not in own)
                    return
                run.retire.extend((*r.keys, *r.retire))
                del self.runs[i]
                break
        self.runs.append(run)

    def _compact(self) -> None:
        """Merge the FANOUT oldest runs of the lowest level that has as many (size-tiered, as an LSM
        tree); runs that would make over MAX_RUN ids, or span over MAX_SPAN_S, are final instead."""
        while True:
            levels: dict[int, list[Run]] = {}
            for r in self.runs:
                if r.level < FINAL:
                    levels.setdefault(r.level, []).append(r)
            full = [lv for lv, rs in levels.items() if len(rs) >= FANOUT]
            if not full:
                return
            level = min(full)
            group = levels[level][:FANOUT]
            n = sum(len(r) for r in group)
            span = max(r.exp for r in group) - min(r.exp for r in group)
            first, last = min(r.base for r in group), max(r.last for r in group)
            if n > MAX_RUN or (span > MAX_SPAN_S and n > SMALL_RUN) or last - first >= 1 << 32:
                for r in group:
                    r.level = FINAL
                continue
            self.runs = [r for r in self.runs if all(r is not g for g in group)]
            self._add_run(merge(group, level + 1))  # its ids are in the filter already

    def _rebuild_filter(self) -> None:
        self.filter = Filter(0)  # the old one goes first: never two large filters at once
        f = Filter(int(sum(len(r) for r in self.runs) * FILTER_GROWTH))
        for r in self.runs:
            f.add(r.fps)
        self.filter = f

    def expire(self, cutoff: float) -> list[bytes]:
        """Drop the runs whose newest event is older than `cutoff`; returns the keys to tombstone."""
        if any(exp < cutoff for _, exp in self._young):
            self._seal_young()
        if not (gone := [r for r in self.runs if r.exp < cutoff]):
            return []
        self.runs = [r for r in self.runs if r.exp >= cutoff]
        if sum(len(r) for r in self.runs) * FILTER_GROWTH * 2 < self.filter.capacity:
            self._rebuild_filter()  # shrink
        return [k for r in gone for k in (*r.keys, *r.retire)]

    def load(self, records: Iterable[tuple[DedupeKey, bytes, bytes | None]]) -> None:
        """Add the runs of this topic's dedupe records, given in topic order (a tombstone removes its key)."""
        latest: dict[bytes, tuple[DedupeKey, bytes]] = {}
        for key, kraw, vraw in records:
            if vraw is None:
                latest.pop(kraw, None)
            else:
                latest[kraw] = (key, vraw)
        chunks: dict[tuple[int, str], list[tuple[int, bytes, DedupeChunk]]] = {}
        for kraw, (key, vraw) in latest.items():
            if key.run:
                part = (key.chunk, kraw, DedupeChunk.from_bytes(vraw))
                chunks.setdefault((key.first_offset, key.run), []).append(part)
            else:
                self._load_batch(kraw, DedupeBatch.from_bytes(vraw))
        for (base, tag), parts in chunks.items():
            parts.sort(key=lambda c: c[0])
            cs = [c for _, _, c in parts]
            fps = np.concatenate([np.frombuffer(c.body, "<u8", len(c)) for c in cs]).astype(np.uint64, copy=False)
            offs = np.concatenate([np.frombuffer(c.body, "<u4", len(c), 8 * len(c)) for c in cs]).astype(np.uint32)
            if len(fps) > 1 and not (fps[1:] >= fps[:-1]).all():  # a batch record: in arrival order
                order = np.argsort(fps)
                fps, offs = fps[order], offs[order]
            run = Run(fps, offs, base, cs[0].exp, tag, cs[0].chunks, cs[0].level, [kraw for _, kraw, _ in parts])
            run.next_chunk = run.total
            self.runs.append(run)
        self.runs.sort(key=lambda r: r.last)  # creation order, near enough
        self._rebuild_filter()
        self._changed = True

    def _load_batch(self, kraw: bytes, batch: DedupeBatch) -> None:
        """A record of the previous format (JSON ids): a run until it expires or is merged."""
        if n := len(batch.ids):
            fps = np.fromiter((fingerprint(e) for e in batch.ids), dtype=np.uint64, count=n)
            run = make_run(fps, *_relative(np.fromiter(batch.ids.values(), dtype=np.int64, count=n)), batch.exp)
            run.keys, run.next_chunk = [kraw], run.total
            self.runs.append(run)
