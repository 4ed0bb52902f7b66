"""What dedupe by event id costs (stream/dedupe.py), beside the previous design (a dict of ids).

    python -m bench.dedupe        # alone; `make bench` runs it too (bench/run.py)

- memory: bytes per remembered id (the structures' nbytes, and the process's RSS delta), and the RSS
  of a fresh process that has sent 2 M distinct ids through `first` and `PartitionState.drain`;
- restart: a fresh process loads the compacted dedupe records of 0.5 M, 1 M and 2 M ids through
  `PartitionState.load` (the records are in memory, as `StateStore.read_partition` returns them:
  the broker's read is not counted), with the RSS after;
- throughput: events/s of `Processor.process` on the same events (40,000, 5 % redelivered, over 6
  partitions), with this dedupe and with the previous one swapped in, batch by batch in lockstep, in
  CPU time (other processes on the machine then count less); the median of REPEATS paired ratios.

Each memory and restart figure comes from a process of its own, so that one does not inherit the
other's heap.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from services.loadgen import LIVE, random_stream, topic_and_key
from stream import state as state_module
from stream.dedupe import DedupeIndex
from stream.folds import KpiConfig
from stream.processor import Message, Processor
from stream.records import DedupeBatch, DedupeKey, Record, encode_key
from stream.state import PartitionState

LOADS = (500_000, 1_000_000, 2_000_000)
BATCH = 2000  # ids per micro-batch (SQM_BATCH_MAX)
REPEATS = int(os.environ.get("SQM_BENCH_DEDUPE_REPEATS", "5"))


class DictDedupe:
    """The previous design, for comparison: every id in a dict id -> offset and again in the dict of
    its batch, written as one JSON record per batch (`["d", topic, p, first_offset]`)."""

    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.p = topic, partition
        self.seen: dict[str, int] = {}
        self.batches: dict[int, DedupeBatch] = {}
        self.open: tuple[int, DedupeBatch] | None = None

    def __len__(self) -> int:
        return len(self.seen)

    def first(self, event_id: str, offset: int, ts: float) -> int:
        got = self.seen.get(event_id)
        if got is not None:
            return got
        self.seen[event_id] = offset
        if self.open is None:
            self.open = (offset, DedupeBatch(ts, {}))
            self.batches[offset] = self.open[1]
        batch = self.open[1]
        batch.ids[event_id] = offset
        batch.exp = max(batch.exp, ts)
        return offset

    def flush(self) -> list[Record]:
        if self.open is None:
            return []
        (first, batch), self.open = self.open, None
        return [(encode_key(DedupeKey(self.topic, self.p, first)), batch.to_bytes())]

    def expire(self, cutoff: float) -> list[bytes]:
        gone = [f for f, b in self.batches.items() if b.exp < cutoff and (self.open is None or self.open[0] != f)]
        for f in gone:
            for eid in self.batches.pop(f).ids:
                self.seen.pop(eid, None)
        return [encode_key(DedupeKey(self.topic, self.p, f)) for f in gone]

    def load(self, records: list[tuple[DedupeKey, bytes, bytes | None]]) -> None:
        for key, _, vraw in records:
            old = self.batches.pop(key.first_offset, None)
            for eid in old.ids if old else ():
                self.seen.pop(eid, None)
            if vraw is not None:
                self.batches[key.first_offset] = b = DedupeBatch.from_bytes(vraw)
                self.seen.update(b.ids)


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def trimmed_rss() -> int:
    """RSS once the C allocator has returned its free pages (glibc keeps the temporaries of merges:
    its mmap threshold rises with each large free; MALLOC_MMAP_THRESHOLD_=131072 keeps it low)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss()


def use(design: str) -> type[DedupeIndex] | type[DictDedupe]:
    """`fingerprints` (stream/dedupe.py) or `dict` (the previous design) for the PartitionStates made
    from now on (they make an index per topic when they first see it)."""
    cls = DictDedupe if design == "dict" else DedupeIndex
    vars(state_module)["DedupeIndex"] = cls
    return cls


def feed(design: str, n: int, out: Path) -> dict[str, Any]:
    """Send n distinct ids (uuid4-like text, a new string each, as decoding makes them) through
    `first` and `PartitionState.drain`, a micro-batch at a time. The records go to a file (the state
    topic), with its length after each of LOADS ids, for the restart figures."""
    cls = use(design)
    rnd = random.Random(7)
    before = rss()
    st = PartitionState(0, KpiConfig(), 60, 7 * 86400)
    idx = st.seen["tickets"] = cls("tickets", 0)  # type: ignore[assignment]
    sizes: dict[bytes, int] = {}  # the state topic after compaction: key -> value size
    marks: dict[int, int] = {}
    t0 = time.process_time()
    with (out / f"{design}.log").open("wb") as topic:
        for lo in range(0, n, BATCH):
            for o in range(lo, min(n, lo + BATCH)):
                idx.first(f"{rnd.getrandbits(128):032x}", o, 1_000_000.0 + o / 2000)
            records = st.drain().records
            pickle.dump(records, topic)
            for k, v in records:
                if v is None:
                    sizes.pop(k, None)
                else:
                    sizes[k] = len(v)
            if lo + BATCH in LOADS:
                marks[lo + BATCH] = topic.tell()
    cpu = time.process_time() - t0
    after = rss()
    trimmed = trimmed_rss()
    (out / f"{design}.marks").write_text(json.dumps(marks))
    result: dict[str, Any] = {"ids": len(idx), "rss_mb": round(after / 2**20, 1),
                              "rss_bytes_per_id": round((after - before) / n, 1),
                              "trimmed_rss_bytes_per_id": round((trimmed - before) / n, 1),
                              "cpu_ns_per_id": round(cpu / n * 1e9),
                              "records": len(sizes), "largest_record_bytes": max(sizes.values())}
    if isinstance(idx, DedupeIndex):
        result.update(nbytes_per_id=round(idx.nbytes / len(idx), 2), runs=len(idx.runs))
    return result


def load(design: str, n: int, out: Path) -> dict[str, Any]:
    """Restart after n ids: `PartitionState.load` of the records then on the topic, compacted (as the
    broker would have them) and already in memory (as `StateStore.read_partition` returns them)."""
    use(design)
    end = json.loads((out / f"{design}.marks").read_text())[str(n)]
    topic: dict[bytes, bytes | None] = {}
    with (out / f"{design}.log").open("rb") as f:
        while f.tell() < end:
            topic.update(pickle.load(f))
    records: list[Record] = [(k, v) for k, v in topic.items() if v is not None]
    del topic
    before = rss()
    st = PartitionState(0, KpiConfig(), 60, 7 * 86400)
    t0 = time.perf_counter()
    st.load(records)
    took = time.perf_counter() - t0
    del records
    return {"ids": len(st.seen["tickets"]), "load_s": round(took, 3), "rss_mb": round(rss() / 2**20, 1),
            "rss_delta_mb": round((rss() - before) / 2**20, 1)}


def child(*args: str, **env: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.dedupe", *args], capture_output=True, text=True, timeout=1800,
                         check=False, env={**os.environ, **env})
    if out.returncode:
        raise RuntimeError(f"bench.dedupe {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def messages(n: int = 40_000) -> list[Message]:
    now = 1_800_000_000.0
    events = random_stream(n, now, seed=42, bands=LIVE, agents=200)
    rnd = random.Random(3)
    events += [dict(e) for e in rnd.sample(events, n // 20)]
    rnd.shuffle(events)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for ev in events:
        topic, key = topic_and_key(ev)
        p = hash(key) % 6
        o = offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        out.append(Message(topic, p, o, key.encode(), orjson.dumps(ev)))
    return out


class NullSink:
    async def write(self, *_: Any, **__: Any) -> None:
        return None

    async def read_partition(self, partition: int) -> list[Record]:
        return []


def throughput(msgs: list[Message]) -> dict[str, float]:
    """Events/s of `Processor.process` with each design, one Processor each, fed the same batches in
    lockstep (which goes first alternates), so that the machine's ups and downs fall on both."""
    now = 1_800_000_000.0

    async def go() -> dict[str, float]:
        procs = {d: Processor(NullSink(), KpiConfig(), 60, 7 * 86400) for d in ("dict", "fingerprints")}
        cpu = dict.fromkeys(procs, 0.0)
        for n, i in enumerate(range(0, len(msgs), 500)):
            for d in sorted(procs, reverse=n % 2 == 1):
                use(d)  # the states a Processor makes now get this design, and keep it
                t0 = time.process_time()
                await procs[d].process(msgs[i:i + 500], now=now)
                cpu[d] += time.process_time() - t0
        return {d: len(msgs) / c for d, c in cpu.items()}
    try:
        return asyncio.run(go())
    finally:
        use("fingerprints")


def dedupe_bench(log: Any = print) -> dict[str, Any]:
    """Every figure, each process-bound one from a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        mem = child("feed", "fingerprints", str(LOADS[-1]), tmp)
        log(f"dedupe, 2 M ids fed: {mem['nbytes_per_id']} B/id in the structures, {mem['rss_bytes_per_id']} B/id of "
            f"RSS ({mem['trimmed_rss_bytes_per_id']} once malloc_trim'd), worker RSS {mem['rss_mb']} MB "
            f"({mem['runs']} runs, {mem['records']} records)")
        low = child("feed", "fingerprints", str(LOADS[-1]), tmp, MALLOC_MMAP_THRESHOLD_="131072")
        mem["rss_bytes_per_id_low_mmap_threshold"] = low["rss_bytes_per_id"]
        log(f"  with MALLOC_MMAP_THRESHOLD_=131072: {low['rss_bytes_per_id']} B/id of RSS")
        old = child("feed", "dict", str(LOADS[-1]), tmp)
        log(f"previous design, 2 M ids fed: {old['rss_bytes_per_id']} B/id of RSS ({old['trimmed_rss_bytes_per_id']} "
            f"once malloc_trim'd), worker RSS {old['rss_mb']} MB")
        loads: dict[str, dict[int, Any]] = {"fingerprints": {}, "dict": {}}
        for design in loads:
            for n in LOADS:
                r = loads[design][n] = child("load", design, str(n), tmp)
                log(f"restart ({design}) with {n:,} ids: load {r['load_s'] * 1000:.0f} ms, RSS {r['rss_mb']} MB")
    msgs = messages()
    throughput(msgs[:2000])  # warm up
    runs = [throughput(msgs) for _ in range(REPEATS)]
    before = statistics.median(r["dict"] for r in runs)
    after = statistics.median(r["fingerprints"] for r in runs)
    ratio = statistics.median(r["fingerprints"] / r["dict"] for r in runs)
    log(f"Processor.process, {len(msgs):,} events: {after:,.0f} events/s, previous design {before:,.0f}: "
        f"ratio {ratio:.3f} (median of {REPEATS} paired runs)")
    return {"memory_2m": mem, "previous_design_2m": old,
            "restart": {str(n): v for n, v in loads["fingerprints"].items()},
            "previous_restart": {str(n): v for n, v in loads["dict"].items()},
            "throughput": {"events": len(msgs), "events_per_s": round(after), "previous_events_per_s": round(before),
                           "ratio": round(ratio, 3), "runs": [{k: round(v) for k, v in r.items()} for r in runs]}}


def main(argv: list[str]) -> None:
    if argv[:1] == ["feed"]:
        result = feed(argv[1], int(argv[2]), Path(argv[3]))
    elif argv[:1] == ["load"]:
        result = load(argv[1], int(argv[2]), Path(argv[3]))
    else:
        result = dedupe_bench()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
