"""KPI events/s with 1, 2 and 3 KPI workers in one consumer group, on the bench data, side by side.

Each worker count gets its own copy of the events (own topics, own group). The workers start on the
empty topics; once their heartbeats show that the group has split the partitions, they are frozen
(SIGSTOP) while the events are produced, then thawed together. The rate is taken as bench/run.py
takes the one-worker figure, from the first state record to the counters reaching every event, so
it holds no start-up, group join or producer CPU. The freeze (about a second: the events are encoded
beforehand and sent in producer batches) stays well inside the session timeout (10 s); a group that
rebalanced anyway is reported (`rebalanced`).

Beside the rate: the CPU time (user + system) of the workers and of the broker per event over the
run, how many cores were busy, and how many of them other processes kept busy meanwhile (a measure
disturbed that way is taken again). The machine's core count caps the speed-up: a third worker on
two cores shares them with the other two and the broker.

    python -m bench.scale            # alone, on a broker of its own (make bench runs it from bench/run.py)
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.broker import EmbeddedBroker
from services.config import Settings
from services.producer import route
from services.topics import ensure_topics
from stream.records import Counters, CountersKey, Heartbeat, HeartbeatKey, SentinelKey, decode_key

Start = Callable[..., subprocess.Popen[bytes]]
COUNTS = (1, 2, 3)
REPEATS = int(os.environ.get("SQM_BENCH_SCALE_REPEATS", "3"))
# a measure during which other processes kept more than this busy is taken again, at most RETRIES
# times (the last one counts, with its figure of other load): on 2 cores, one busy core of someone
# else's halves what the workers can get
NOISY_CORES, RETRIES = 0.3, 2


async def split(s: Settings, workers: list[str], timeout: float = 180) -> dict[str, tuple[int, ...]]:
    """Each worker's source partitions, once every one of `workers` reports a share and together they
    hold each partition once (heartbeats, state partition 0)."""
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    await c.start()
    tp = TopicPartition(s.state_topic, 0)
    c.assign([tp])
    await c.seek_to_beginning(tp)
    seen: dict[str, tuple[int, ...]] = {}
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            for m in (await c.getmany(tp, timeout_ms=500)).get(tp, []):
                key = decode_key(m.key)
                if isinstance(key, HeartbeatKey) and m.value:
                    seen[key.worker] = Heartbeat.from_bytes(m.value).assigned
            shares = [seen.get(w, ()) for w in workers]
            held = sorted(p for share in shares for p in share)
            if all(shares) and held == list(range(s.partitions)):
                return {w: seen[w] for w in workers}
        raise TimeoutError(f"{len(workers)} workers did not split the partitions in {timeout} s: {seen}")
    finally:
        await c.stop()


async def run_span(s: Settings, total: int, timeout: float = 600) -> tuple[float, float, dict[str, tuple[int, ...]]]:
    """(first state record, counters reaching `total`) from the record timestamps, and the partitions in
    the workers' last heartbeats (a rebalance during the run shows there)."""
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    await c.start()
    tps = [TopicPartition(s.state_topic, p) for p in range(s.partitions)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    counters: dict[tuple[str, int], int] = {}
    shares: dict[str, tuple[int, ...]] = {}
    first = 0.0
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    key = decode_key(m.key)
                    if isinstance(key, HeartbeatKey) and m.value:
                        shares[key.worker] = Heartbeat.from_bytes(m.value).assigned
                    if key is None or isinstance(key, SentinelKey | HeartbeatKey):
                        continue
                    first = first or m.timestamp / 1000
                    if isinstance(key, CountersKey) and m.value:
                        cn = Counters.from_bytes(m.value)
                        counters[(key.topic, key.partition)] = sum(cn.events.values()) + sum(cn.dead.values()) + cn.dup
                        if sum(counters.values()) >= total:
                            return first, m.timestamp / 1000, shares
        raise TimeoutError(f"the workers reached {sum(counters.values())} of {total} events")
    finally:
        await c.stop()


Batches = dict[tuple[str, int], list[tuple[bytes | None, bytes]]]


def serialized(s: Settings, events: list[dict[str, Any]]) -> Batches:
    """The events encoded and placed on their partitions (Kafka's default partitioner, as any producer
    would) before the workers are frozen, so that the freeze lasts only as long as the sends."""
    partitioner, partitions = DefaultPartitioner(), list(range(s.partitions))
    out: Batches = {}
    for ev in events:
        kind, key = route(ev)
        out.setdefault((s.topic(kind), partitioner(key, partitions, partitions)), []).append((key, orjson.dumps(ev)))
    return out


async def produce(s: Settings, batches: Batches) -> float:
    """Seconds to produce every record, in producer batches of up to 256 KiB: about a second for the
    60,000 bench events, where kafka-python's per-record sends took 9-16 s, longer than the session
    timeout the frozen workers must not miss."""
    p = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks=1, max_batch_size=256 * 1024)
    await p.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for (topic, partition), records in batches.items():
            batch = p.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futs.append(await p.send_batch(batch, topic, partition=partition))
                    batch = p.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futs.append(await p.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futs)
        return time.perf_counter() - t0
    finally:
        await p.stop()


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def one_count(broker: EmbeddedBroker, events: list[dict[str, Any]], n: int, logs: Path, start: Start,
              tag: str) -> dict[str, Any]:
    """One measure with `n` KPI workers on a fresh copy of `events`."""
    s = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=f"benchscale-{tag}.")
    ensure_topics(s)
    names = [f"scale-{tag}-w{i}" for i in range(n)]
    procs = [start("services.worker", s, logs / "scale-workers.log", SQM_WORKER_ID=w, SQM_WORKER_ROLE="kpis")
             for w in names]
    records = serialized(s, events)
    try:
        before = asyncio.run(split(s, names))
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        produce_s = asyncio.run(produce(s, records))
        pids = [p.pid for p in procs]
        broker_pid = [broker.proc.pid] if broker.proc is not None else []
        cpu0, broker0, own0 = cpu_s(pids), cpu_s(broker_pid), cpu_s([os.getpid()])
        psutil.cpu_percent(None)
        t0 = time.perf_counter()
        for p in procs:
            p.send_signal(signal.SIGCONT)
        first, last, after = asyncio.run(run_span(s, len(events)))
        wall = time.perf_counter() - t0
        busy = psutil.cpu_percent(None) * (os.cpu_count() or 1) / 100
        worker_cpu, broker_cpu = cpu_s(pids) - cpu0, cpu_s(broker_pid) - broker0
        # cores kept busy meanwhile by processes other than the workers, the broker and this watcher
        others = max(0.0, busy - (worker_cpu + broker_cpu + cpu_s([os.getpid()]) - own0) / wall)
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in procs:
            p.wait(20)
    n_ev = len(events)
    return {"workers": n, "events_per_s": round(n_ev / max(last - first, 1e-6)),
            "worker_cpu_us_per_event": round(worker_cpu / n_ev * 1e6, 1),
            "broker_cpu_us_per_event": round(broker_cpu / n_ev * 1e6, 1),
            "busy_cores": round(busy, 2), "other_load_cores": round(others, 2), "produce_s": round(produce_s, 2),
            "partitions": sorted(len(v) for v in before.values()),
            "rebalanced": any(after.get(w, before[w]) != before[w] for w in names)}


def scale_rates(broker: EmbeddedBroker, events: list[dict[str, Any]], logs: Path, start: Start, run: str,
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every count of COUNTS, REPEATS times, in alternating order (1 2 3, 3 2 1, ...) so that a drift
    of the machine's state does not favour one count; medians per count."""
    runs: list[dict[str, Any]] = []
    for r in range(REPEATS):
        for n in (COUNTS if r % 2 == 0 else tuple(reversed(COUNTS))):
            for attempt in range(1 + RETRIES):
                m = one_count(broker, events, n, logs, start, f"{run}-{r}-{n}-{attempt}")
                say(f"  {n} KPI worker(s): {m['events_per_s']:,} events/s, workers {m['worker_cpu_us_per_event']} "
                    f"µs CPU/event, broker {m['broker_cpu_us_per_event']} µs, {m['busy_cores']} cores busy, "
                    f"{m['other_load_cores']} of them by other processes"
                    + (" (rebalanced during the run)" if m["rebalanced"] else ""))
                if m["other_load_cores"] <= NOISY_CORES:
                    break
                say(f"    other processes took more than {NOISY_CORES} core: "
                    + ("taken again" if attempt < RETRIES else "kept, as the last of the tries"))
            runs.append(m)
    per: dict[str, dict[str, Any]] = {}
    for n in COUNTS:
        mine = [m for m in runs if m["workers"] == n]
        per[str(n)] = {k: statistics.median(m[k] for m in mine)
                       for k in ("events_per_s", "worker_cpu_us_per_event", "broker_cpu_us_per_event", "busy_cores",
                                 "other_load_cores")}
        per[str(n)]["range_events_per_s"] = [min(m["events_per_s"] for m in mine), max(m["events_per_s"] for m in mine)]
    one = per[str(COUNTS[0])]["events_per_s"]
    for v in per.values():
        v["ratio_to_one"] = round(v["events_per_s"] / one, 2)
    return {"cores": os.cpu_count(), "partitions": Settings().partitions, "events": len(events), "repeats": REPEATS,
            "per_count": per, "runs": runs}


def main() -> None:
    from bench.run import OUT, N, start  # the bench's own process starter and event count
    from services.broker import free_port
    from services.loadgen import LIVE, random_stream

    logs = OUT / "logs"
    logs.mkdir(exist_ok=True)
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(logs / "broker.log")).start()
    try:
        events = random_stream(N, time.time(), seed=42, bands=LIVE, agents=200)  # bench/run.py's data
        out = scale_rates(broker, events, logs, start, os.urandom(3).hex())
    finally:
        broker.stop()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
