"""`make bench`: throughput (raw aiokafka vs bare Faust vs full pipeline), latency, worker memory.

Everything runs against one fresh embedded broker, on the same data, in one run. Results go to
bench/results.json and bench/results.md (bench/HISTORY.md keeps the earlier runs).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer
from rich.console import Console

from alerts.rules import DEFAULT_RULE_FILE
from bench.board import board_latency, sse_cost
from bench.dedupe import dedupe_bench
from bench.forecast import forecast_bench
from bench.process_set import process_set_rate
from bench.scale import scale_rates
from bench.voice import comments_throughput, voice_bench
from bench.workforce import agent_mix
from services.broker import EmbeddedBroker, free_port
from services.config import Settings
from services.loadgen import LIVE, agent_state, random_stream, steady_load, ticket
from services.producer import route
from services.topics import ensure_topics
from services.webhook_sink import WebhookSink
from stream.records import Counters, CountersKey, HeartbeatKey, SentinelKey, decode_key

OUT = Path(__file__).parent
N = int(os.environ.get("SQM_BENCH_EVENTS", "60000"))
RATE = 2000
PROBES = int(os.environ.get("SQM_BENCH_PROBES", "100"))
AGENTS = 10_000
# Bare Faust and the pipeline are both CPU-bound and move together with the machine's state (same
# script, same data: bare 5.5k-11k events/s on different runs): measure them in pairs, report medians.
REPEATS = int(os.environ.get("SQM_BENCH_REPEATS", "3"))
console = Console()


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024, acks=1)


def produce_all(s: Settings, events: list[dict[str, Any]]) -> float:
    p = producer(s.kafka_bootstrap_servers)
    t0 = time.perf_counter()
    for ev in events:
        kind, key = route(ev)
        p.send(s.topic(kind), key=key, value=orjson.dumps(ev))
    p.flush()
    p.close()
    return len(events) / (time.perf_counter() - t0)


async def raw_consumer(s: Settings, n: int) -> float:
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False,
                         max_partition_fetch_bytes=4 * 1024 * 1024)
    await c.start()
    tps = [TopicPartition(t, p) for t in s.source_topics.values() for p in range(s.partitions)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    seen, t0 = 0, time.perf_counter()
    while seen < n:
        batches = await c.getmany(timeout_ms=500, max_records=5000)
        for msgs in batches.values():
            for m in msgs:
                orjson.loads(m.value)
            seen += len(msgs)
    rate = n / (time.perf_counter() - t0)
    await c.stop()
    return rate


def bare_faust(s: Settings, n: int) -> float:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SQM_TOPIC_PREFIX": s.topic_prefix}
    out = subprocess.run([sys.executable, "-m", "bench.faust_bare", str(n)], env=env, capture_output=True,
                         timeout=600, text=True)
    # Faust's worker sends stdout through logging: find the result line wherever it went
    line = [ln[ln.index('{"first"'):] for ln in (out.stdout + out.stderr).splitlines() if '{"first"' in ln]
    if not line:
        raise RuntimeError(f"bare Faust agent failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    r = json.loads(line[-1].strip())
    return n / (r["last"] - r["first"])


def other_load(seconds: float = 2.0) -> float:
    """Cores kept busy by other processes while the bench itself is idle (noise in the throughput figures)."""
    psutil.cpu_percent(None)
    time.sleep(seconds)
    return psutil.cpu_percent(None) * (os.cpu_count() or 1) / 100


def start(module: str, s: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    e = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "SQM_TOPIC_PREFIX": s.topic_prefix,
         "SQM_EMBEDDED_BROKER": "off", **env}
    return subprocess.Popen([sys.executable, "-m", module], env=e, stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def watch_state(s: Settings, total: int, timeout: float = 600) -> tuple[float, float]:
    """(first state record time, time the counters reach `total`) from the state topic's timestamps."""
    c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False)
    await c.start()
    tps = [TopicPartition(s.state_topic, p) for p in range(s.partitions)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    counters: dict[tuple[str, int], int] = {}
    first = 0.0
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            batches = await c.getmany(timeout_ms=500)
            for msgs in batches.values():
                for m in msgs:
                    key = decode_key(m.key)
                    if key is None or isinstance(key, SentinelKey | HeartbeatKey):
                        continue
                    if not first:
                        first = m.timestamp / 1000
                    if isinstance(key, CountersKey) and m.value:
                        cn = Counters.from_bytes(m.value)
                        counters[(key.topic, key.partition)] = sum(cn.events.values()) + sum(cn.dead.values()) + cn.dup
                        if sum(counters.values()) >= total:
                            return first, m.timestamp / 1000
        raise TimeoutError(f"pipeline reached {sum(counters.values())} of {total}")
    finally:
        await c.stop()


def load(bootstrap: str, prefix: str, rate: int, seconds: float) -> None:
    """Steady background load (a separate process, so that it does not share the prober's GIL)."""
    steady_load(producer(bootstrap), Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix), rate, seconds,
                agents=200, seed=0)


def latency(s: Settings, api: str) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    bg = ctx.Process(target=load, args=(s.kafka_bootstrap_servers, s.topic_prefix, RATE, PROBES * 0.5 + 30))
    bg.start()
    time.sleep(3)
    p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks=1, linger_ms=0)
    client = httpx.Client(base_url=api, timeout=5)
    lat = []
    for k in range(1, PROBES + 1):
        now = time.time()
        ev = ticket("ticket.created", now, now, f"probe-{k}", team="probe", event_id=f"probe-{uuid.uuid4()}")
        t0 = time.perf_counter()
        p.send(s.topic("tickets"), key=ev["ticket_id"].encode(), value=orjson.dumps(ev))
        p.flush()
        while True:
            r = client.get("/v1/kpis", params={"scope": "team:probe", "window": "5m"})
            if r.status_code == 200 and r.json()["kpis"]["tickets_created"]["count"] >= k:
                break
            if time.perf_counter() - t0 > 30:
                raise TimeoutError(f"probe {k} not visible after 30 s")
            time.sleep(0.005)
        lat.append(time.perf_counter() - t0)
        time.sleep(0.3)
    bg.terminate()
    bg.join()
    return quantiles(lat)


PROBE_RULE = {"id": "bench-probe", "kpi": "tickets_created", "scope": "team:*", "window": "5m", "op": ">",
              "warning": 0, "for": "0s"}


def alert_latency(s: Settings, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    """Produce of the event that crosses a threshold -> the alert received by a webhook, under the
    background load. The probe rule has `for: 0s`, so this is the time beyond `for`."""
    sink = WebhookSink().start()
    notify = logs / "bench-notify.yaml"
    notify.write_text(json.dumps({"targets": [{"name": "hook", "type": "webhook", "url": f"{sink.url}/hook"}],
                                  "routes": [{"match": {"rule": "bench-probe"}, "targets": ["hook"]}]}))
    notifier = start("services.notifier", s, logs / "notifier.log", SQM_NOTIFY_FILE=str(notify), **env)
    ctx = mp.get_context("spawn")
    bg = ctx.Process(target=load, args=(s.kafka_bootstrap_servers, s.topic_prefix, RATE, PROBES * 1.0 + 30))
    bg.start()
    time.sleep(8)  # notifier joins its group
    p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks=1, linger_ms=0)
    lat, worker_part = [], []  # whole, and produce -> firing transition in the worker
    try:
        for k in range(1, PROBES + 1):
            team = f"ap{k}x{uuid.uuid4().hex[:6]}"
            now = time.time()
            ev = ticket("ticket.created", now, now, f"aprobe-{k}", team=team, event_id=f"aprobe-{uuid.uuid4()}")
            t0 = time.time()
            p.send(s.topic("tickets"), key=ev["ticket_id"].encode(), value=orjson.dumps(ev))
            p.flush()
            while True:
                with sink.lock:
                    got = [(a, b["alert"]) for (path, b), a in zip(sink.received, sink.arrived, strict=True)
                           if b["alert"]["scope"] == f"team:{team}"]
                if got:
                    lat.append(got[0][0] - t0)
                    worker_part.append(got[0][1]["started_at"] - t0)
                    break
                if time.time() - t0 > 30:
                    raise TimeoutError(f"alert probe {k} not delivered after 30 s (see bench/logs)")
                time.sleep(0.005)
            time.sleep(0.5)
    finally:
        bg.terminate()
        bg.join()
        notifier.terminate()
        notifier.wait(15)
        sink.stop()
    out: dict[str, Any] = {**quantiles(lat), "worker_part": quantiles(worker_part)}
    return out


def wait_alert_worker(s: Settings, api: str) -> None:
    """Until the alert worker evaluates every scope partition (it loads the scope topic first)."""
    deadline = time.time() + 180
    while time.time() < deadline:
        text = httpx.get(api + "/metrics", timeout=10).text
        owned = [float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("sqm_worker_alert_partitions{")]
        if sum(owned) >= s.partitions:
            return
        time.sleep(1)
    raise TimeoutError("the alert worker did not take every scope partition in 180 s (see bench/logs/alerts.log)")


BOARDS, BOARD_PROBES, SSE_CLIENTS = 50, 20, 200


def board_bench(s: Settings, api: str, api_pid: int) -> dict[str, Any]:
    """Event -> figure on 50 open boards, and the API's CPU and RSS with 200 boards, both under load."""
    ctx = mp.get_context("spawn")
    bg = ctx.Process(target=load, args=(s.kafka_bootstrap_servers, s.topic_prefix, RATE, 180))
    bg.start()
    time.sleep(3)
    try:
        p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks=1, linger_ms=0)
        lat = board_latency(s, api, BOARDS, BOARD_PROBES, p)
        cost = sse_cost(api, api_pid, SSE_CLIENTS, 30)
    finally:
        bg.terminate()
        bg.join()
    return {**quantiles(lat), "boards": BOARDS, "sse": cost}


def quantiles(xs: list[float]) -> dict[str, float]:
    """p50, p99 by the nearest-rank method (p99 of 100 probes is the 99th, not the slowest), and max."""
    xs = sorted(xs)
    return {"p50_s": statistics.median(xs), "p99_s": xs[max(0, math.ceil(0.99 * len(xs)) - 1)],
            "max_s": xs[-1], "probes": len(xs)}


def agents_memory(s: Settings, api: str) -> dict[str, float]:
    p = producer(s.kafka_bootstrap_servers)
    now = time.time()
    for i in range(AGENTS):
        for ev in (ticket("ticket.first_response", now - i % 200, now - 900, f"mem-{i}", agent=f"agent-{i:05d}"),
                   {**ticket("ticket.resolved", now - i % 200, now - 3000, f"mem-{i}", agent=f"agent-{i:05d}"),
                    "contacts": 1}):
            kind, key = route(ev)
            p.send(s.topic(kind), key=key, value=orjson.dumps(ev))
        # and each agent's live state: available, then on a contact (a spell booked into its buckets)
        for ev in (agent_state(now - 300, f"agent-{i:05d}", "available", team=f"t{i % 40}", queues=[f"q{i % 80}"]),
                   agent_state(now - 120 + i % 100, f"agent-{i:05d}", "on_contact", team=f"t{i % 40}")):
            kind, key = route(ev)
            p.send(s.topic(kind), key=key, value=orjson.dumps(ev))
    p.flush()
    client = httpx.Client(base_url=api, timeout=30)
    deadline = time.time() + 180
    while time.time() < deadline:
        r = client.get("/v1/scopes", params={"kind": "agent"})
        live = client.get("/v1/agents", params={"scope": "all", "state": "on_contact"}).json().get("agents", [])
        if sum(sc.startswith("agent:agent-") for sc in r.json()["scopes"]) >= AGENTS and len(live) >= AGENTS:
            break
        time.sleep(1)
    time.sleep(6)  # one more heartbeat with the memory figure
    text = client.get("/metrics").text
    rss = [float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("sqm_worker_resident_memory_bytes")]
    n = sum(sc.startswith("agent:") for sc in client.get("/v1/scopes", params={"kind": "agent"}).json()["scopes"])
    states = len(client.get("/v1/agents", params={"scope": "all"}).json()["agents"])
    return {"agents_live": n, "agent_states": states, "worker_rss_mb": max(rss) / 2**20}


def main() -> None:
    logs = OUT / "logs"
    logs.mkdir(exist_ok=True)
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(logs / "broker.log")).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # live-like traffic: event times within the last two minutes, 200 agents, every event type
        events = random_stream(N, time.time(), seed=42, bands=LIVE, agents=200)
        run = uuid.uuid4().hex[:6]
        runs: list[dict[str, float]] = []
        for r in range(REPEATS):
            # each pair on its own copy of the data (own topics, so watch_state sees only its worker);
            # the last copy is "bench." and its KPI worker stays up for the latency measures
            s = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix="bench." if r == REPEATS - 1
                         else f"bench{r}.")
            ensure_topics(s)
            console.print(f"[{r + 1}/{REPEATS}] producing {N} events ...")
            console.print(f"  produced at {produce_all(s, events):,.0f}/s")
            if r == 0:
                raw = asyncio.run(raw_consumer(s, N))
                console.print(f"raw aiokafka + orjson: {raw:,.0f} events/s")
            busy = other_load()
            bare_r = bare_faust(s, N)
            worker = start("services.worker", s, logs / "worker.log", SQM_GROUP_ID=f"bench-{run}-{r}",
                           SQM_WORKER_ID=f"bench-worker-{r}", SQM_WORKER_ROLE="kpis")
            procs.append(worker)
            first, last = asyncio.run(watch_state(s, N))
            full_r = N / max(last - first, 1e-6)
            if r < REPEATS - 1:
                procs.remove(worker)
                worker.terminate()
                worker.wait(15)
            runs.append({"bare": round(bare_r), "full": round(full_r), "ratio": round(full_r / bare_r, 3),
                         "other_load_cores": round(busy, 2)})
            console.print(f"  bare Faust {bare_r:,.0f}/s, full pipeline (one KPI worker) {full_r:,.0f}/s, "
                          f"ratio {full_r / bare_r:.2f} (other processes: {busy:.2f} cores busy)")
        bare = statistics.median(x["bare"] for x in runs)
        full = statistics.median(x["full"] for x in runs)
        ratio = statistics.median(x["ratio"] for x in runs)
        # the whole `make run` process set on its own copy of the same events, beside a bare run
        s_set = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix="benchset.")
        ensure_topics(s_set)
        produce_all(s_set, events)
        set_bare = bare_faust(s_set, N)
        set_rate, set_procs = process_set_rate(s_set, N, logs, start, run)
        for p in set_procs:
            p.terminate()
        for p in set_procs:
            p.wait(15)
        process_set = {"bare": round(set_bare), "set": round(set_rate), "ratio": round(set_rate / set_bare, 3)}
        console.print(f"whole `make run` set: {set_rate:,.0f} events/s beside bare Faust {set_bare:,.0f}/s: "
                      f"ratio {set_rate / set_bare:.2f}")
        console.print("the KPI worker with 30 % agent events in the mix, paired with the same run without ...")
        agents_mix = agent_mix(broker.bootstrap, events, logs, start, produce_all, watch_state, run, console.print)
        console.print("the KPI worker on surveys with a comment on every one / the same without comments ...")
        voice_mix = comments_throughput(broker.bootstrap, events, logs, start, produce_all, watch_state, run,
                                        console.print)
        console.print("1, 2 and 3 KPI workers in one group, on copies of the same events ...")
        scaling = scale_rates(broker, events, logs, start, run, console.print)
        port = free_port()
        # the default rules plus a probe rule for the alert latency, evaluated from now on
        rules = logs / "bench-rules.yaml"
        doc = yaml.safe_load(DEFAULT_RULE_FILE.read_text())
        doc["rules"].append(PROBE_RULE)
        rules.write_text(yaml.safe_dump(doc))
        db = logs / "bench.db"
        db.unlink(missing_ok=True)
        env = {"SQM_DATABASE_URL": f"sqlite:///{db}", "SQM_RULES_FILE": str(rules)}
        api_proc = start("services.api", s, logs / "api.log", SQM_API_PORT=str(port), **env)
        procs.append(api_proc)
        api = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(api + "/readyz").json()["ready"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        procs.append(start("services.worker", s, logs / "alerts.log", SQM_GROUP_ID=f"bench-alerts-{run}",
                           SQM_WORKER_ID="bench-alerts", SQM_WORKER_ROLE="alerts"))
        lat = latency(s, api)
        console.print(f"latency at {RATE}/s: p50 {lat['p50_s'] * 1000:.0f} ms, p99 {lat['p99_s'] * 1000:.0f} ms")
        wait_alert_worker(s, api)
        alert = alert_latency(s, logs, env)
        wp = alert["worker_part"]
        console.print(f"threshold crossing -> webhook at {RATE}/s: p50 {alert['p50_s'] * 1000:.0f} ms, "
                      f"p99 {alert['p99_s'] * 1000:.0f} ms (of which produce -> firing in the worker: "
                      f"p50 {wp['p50_s'] * 1000:.0f} ms, p99 {wp['p99_s'] * 1000:.0f} ms)")
        boards = board_bench(s, api, api_proc.pid)
        console.print(f"event -> figure on {BOARDS} open boards at {RATE}/s: p50 {boards['p50_s'] * 1000:.0f} ms, "
                      f"p99 {boards['p99_s'] * 1000:.0f} ms; API with {boards['sse']['clients']} boards open: "
                      f"{boards['sse']['cpu_percent_of_one_core']} % of a core, {boards['sse']['rss_mb']} MB")
        mem = agents_memory(s, api)
        console.print(f"worker RSS with {mem['agents_live']} agents live: {mem['worker_rss_mb']:.0f} MB")
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
        broker.stop()
    dedupe = dedupe_bench(console.print)  # no broker: memory, restart and fold throughput of dedupe alone
    forecasts = forecast_bench(console.print)  # no broker: the forecast's error and fit time
    voice = {**voice_bench(console.print), "throughput": voice_mix}  # accuracy, cost, memory; the paired runs
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}", "events": N,
        "throughput_events_per_s": {"raw_aiokafka_orjson": round(raw), "bare_faust_agent": round(bare),
                                    "full_pipeline_one_worker": round(full)},
        "ratios": {"full_over_bare_faust": ratio, "full_over_raw": round(full / raw, 3)},
        "throughput_runs": runs,
        "make_run_process_set": process_set,
        "kpi_worker_scaling": scaling,
        "latency_produce_to_api_at_2000_per_s": {k: round(v, 4) for k, v in lat.items()},
        "alert_crossing_to_webhook_at_2000_per_s": {
            **{k: round(v, 4) for k, v in alert.items() if k != "worker_part"},
            "produce_to_firing_in_worker": {k: round(v, 4) for k, v in alert["worker_part"].items()}},
        "board_event_to_figure_at_2000_per_s": {**{k: round(v, 4) for k, v in boards.items()
                                                   if k not in ("sse", "boards")}, "boards": BOARDS},
        "api_with_open_boards": boards["sse"],
        "memory": {k: round(v, 1) for k, v in mem.items()},
        "dedupe": dedupe,
        "agent_events_mix": agents_mix,
        "forecast": forecasts,
        "voice": voice,
        "targets": {"voice_clear_accuracy": ">= 0.85 per language", "comments_throughput_ratio": ">= 0.80",
                    "first_comment_s": "<= 10",
                    "agent_mix_ratio": ">= 0.90", "full_over_bare_faust": ">= 0.70", "p99_s": "<= 1.0",
                    "worker_rss_mb": "<= 300", "alert_p99_s_beyond_for": "<= 2.0", "board_p99_s": "<= 2.0",
                    "dedupe_bytes_per_id": "< 16"},
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "results.md").write_text(render(results))
    console.print(render(results))


def rerender() -> None:
    """results.md again from results.json (after a change of its layout, without measuring again)."""
    (OUT / "results.md").write_text(render(json.loads((OUT / "results.json").read_text())))


def render(r: dict[str, Any]) -> str:
    t, ra, la, me = r["throughput_events_per_s"], r["ratios"], r["latency_produce_to_api_at_2000_per_s"], r["memory"]
    al = r["alert_crossing_to_webhook_at_2000_per_s"]
    runs, ps = r["throughput_runs"], r["make_run_process_set"]
    wp = al["produce_to_firing_in_worker"]
    bo, sse = r["board_event_to_figure_at_2000_per_s"], r["api_with_open_boards"]
    dm, dp, dt = r["dedupe"]["memory_2m"], r["dedupe"]["previous_design_2m"], r["dedupe"]["throughput"]
    am, fw, ft = r["agent_events_mix"], r["forecast"]["wape"], r["forecast"]["time"]
    vo = r["voice"]
    vl, vc, vt, vm = vo["labelled"], vo["cost"], vo["throughput"], vo["topic_memory"]
    load_ms = " / ".join(f"{v['load_s'] * 1000:.0f}" for v in r["dedupe"]["restart"].values())
    old_ms = " / ".join(f"{v['load_s'] * 1000:.0f}" for v in r["dedupe"]["previous_restart"].values())
    ok = lambda b: "met" if b else "NOT met"  # noqa: E731
    sc = r["kpi_worker_scaling"]
    scaling = "".join(
        f"| {n} KPI worker(s), one group, {sc['partitions']} partitions, {sc['cores']} cores, median of"
        f" {sc['repeats']} | {v['events_per_s']:,.0f} events/s ({v['range_events_per_s'][0]:,}-"
        f"{v['range_events_per_s'][1]:,}), {v['ratio_to_one']:.2f}x one worker;"
        f" CPU per event: workers {v['worker_cpu_us_per_event']:.0f} µs, broker {v['broker_cpu_us_per_event']:.0f} µs;"
        f" {v['busy_cores']:.1f} cores busy ({v['other_load_cores']:.1f} by other processes) | |\n"
        for n, v in sc["per_count"].items())
    return f"""# Benchmark results ({r['when']}, {r['machine']}, {r['events']} events)

| measure | result | target |
|---|---|---|
| raw aiokafka + orjson consumer | {t['raw_aiokafka_orjson']:,} events/s | (ceiling) |
| bare Faust agent (decode + count), median of {len(runs)} | {t['bare_faust_agent']:,} events/s\
 ({min(x['bare'] for x in runs):,}-{max(x['bare'] for x in runs):,}) | (reference) |
| full pipeline, one KPI worker, median of {len(runs)} | {t['full_pipeline_one_worker']:,} events/s\
 ({min(x['full'] for x in runs):,}-{max(x['full'] for x in runs):,}) | |
| full / bare Faust, median of the {len(runs)} paired ratios | {ra['full_over_bare_faust']:.2f}\
 ({min(x['ratio'] for x in runs):.2f}-{max(x['ratio'] for x in runs):.2f})\
 | >= 0.70: {ok(ra['full_over_bare_faust'] >= 0.7)} |
| whole `make run` set (KPI + alert workers, API, notifier, history writer), through the API\
 | {ps['set']:,} events/s beside bare Faust {ps['bare']:,}: ratio {ps['ratio']:.2f} | |
{scaling}| full / raw consumer | {ra['full_over_raw']:.3f} | |
| produce -> visible in /v1/kpis at 2,000 events/s, p50 | {la['p50_s'] * 1000:.0f} ms\
 | |
| same, p99 / max ({la['probes']:.0f} probes) | {la['p99_s'] * 1000:.0f} ms / {la['max_s'] * 1000:.0f} ms\
 | p99 <= 1000 ms: {ok(la['p99_s'] <= 1.0)} |
| threshold-crossing event -> alert at a webhook (`for: 0s`) at 2,000 events/s, p50 | {al['p50_s'] * 1000:.0f} ms\
 | |
| same, p99 / max ({al['probes']:.0f} probes) | {al['p99_s'] * 1000:.0f} ms / {al['max_s'] * 1000:.0f} ms\
 | p99 <= 2000 ms beyond `for`: {ok(al['p99_s'] <= 2.0)} |
| of which produce -> firing transition in the worker, p50 / p99 | {wp['p50_s'] * 1000:.0f} ms /\
 {wp['p99_s'] * 1000:.0f} ms | |
| event -> figure on {bo['boards']} open boards (SSE) at 2,000 events/s, p50 | {bo['p50_s'] * 1000:.0f} ms | |
| same, p99 / max ({bo['probes']:.0f} figure updates) | {bo['p99_s'] * 1000:.0f} ms / {bo['max_s'] * 1000:.0f} ms\
 | p99 <= 2000 ms: {ok(bo['p99_s'] <= 2.0)} |
| API with {sse['clients']} boards open (5 configurations) at 2,000 events/s: CPU, RSS\
 | {sse['cpu_percent_of_one_core']} % of a core, {sse['rss_mb']:.0f} MB ({sse['events_per_s']} SSE events/s) | |
| worker RSS with {me['agent_states']:,.0f} agents in live state ({me['agents_live']:,.0f} agent scopes listed)\
 | {me['worker_rss_mb']:.0f} MB | <= 300 MB: {ok(me['worker_rss_mb'] <= 300)} |
| KPI worker with {am['agent_share']:.0%} agent events in the mix / without, median of {len(am['pairs'])} pairs\
 | {am['with']:,.0f} / {am['without']:,.0f} events/s: ratio {am['ratio']:.2f}\
 ({min(x['ratio'] for x in am['pairs']):.2f}-{max(x['ratio'] for x in am['pairs']):.2f})\
 | >= 0.90: {ok(am['ratio'] >= 0.9)} |
| forecast WAPE, 2 h ahead, a week of hourly origins, at 2 / 20 / 150 calls per busy quarter hour\
 | {" / ".join(str(w['profile_sqm']) for w in fw if w['level_shift'] == 1.0)} (Holt-Winters\
 {" / ".join(str(w['holt_winters_statsmodels']) for w in fw if w['level_shift'] == 1.0)}; seasonal naive\
 {" / ".join(str(w['seasonal_naive_week']) for w in fw if w['level_shift'] == 1.0)}; noise floor\
 {" / ".join(str(w['noise_floor']) for w in fw if w['level_shift'] == 1.0)}) | |
| forecast fit per scope: the method with its band / with the history read (SQLite, four weeks)\
 | {ft['forecast_with_band_ms']} ms / {ft['make_per_scope_ms']} ms (Holt-Winters fit {ft['holt_winters_fit_ms']} ms) | |
| comment sentiment, held-out labelled set: accuracy on clear polarity, zh / en\
 | {vl['zh']['clear_accuracy']:.1%} of {vl['zh']['clear_polar']} / {vl['en']['clear_accuracy']:.1%} of\
 {vl['en']['clear_polar']} (tuning set: {vo['dev']['zh']['clear_accuracy']:.1%} /\
 {vo['dev']['en']['clear_accuracy']:.1%})\
 | >= 85 % each: {ok(min(vl['zh']['clear_accuracy'], vl['en']['clear_accuracy']) >= 0.85)} |
| same, neutral comments read as polar, zh / en; three-way accuracy zh / en\
 | {vl['zh']['neutral_as_polar']:.1%} / {vl['en']['neutral_as_polar']:.1%};\
 {vl['zh']['three_way_accuracy']:.1%} / {vl['en']['three_way_accuracy']:.1%} | |
| scoring cost per comment, zh / en; first comment after a fresh start\
 | {vc['zh_us_per_comment']:.0f} µs / {vc['en_us_per_comment']:.0f} µs; {vo['first_comment_s']} s\
 | first <= 10 s: {ok(vo['first_comment_s'] <= 10)} |
| KPI worker on {vt['events']:,} surveys, a comment on every one / none, median of {len(vt['pairs'])} pairs\
 | ratio {vt['ratio']:.2f} ({min(vt['pairs']):.2f}-{max(vt['pairs']):.2f}) | >= 0.80: {ok(vt['ratio'] >= 0.8)} |
| topic index after {vm['days']:.0f} days at {vm['comments'] / vm['days'] / 1440:.0f} negative or neutral\
 comments a minute\
 | {vm['mib']} MiB, {vm['kib_per_scope']:.0f} KiB per scope ({vm['scopes']} scopes, widest bucket\
 {vm['widest_bucket_topics']} topics, bound {vm['topics_per_bucket_bound']}) | |
| dedupe: memory per remembered id with 2 M ids, structures / RSS delta (after malloc_trim;\
 with MALLOC_MMAP_THRESHOLD_=131072) | {dm['nbytes_per_id']:.1f} B / {dm['rss_bytes_per_id']:.0f} B\
 ({dm['trimmed_rss_bytes_per_id']:.0f} B; {dm['rss_bytes_per_id_low_mmap_threshold']:.0f} B);\
 previous design {dp['rss_bytes_per_id']:.0f} B | < 16 B: {ok(dm['nbytes_per_id'] < 16)} |
| dedupe: process RSS after 2 M distinct ids | {dm['rss_mb']:.0f} MB (previous design {dp['rss_mb']:.0f} MB) | |
| dedupe: restart, load of the records of 0.5 M / 1 M / 2 M ids | {load_ms} ms (previous design {old_ms} ms) | |
| dedupe: `Processor.process` with it / with the previous design (CPU time, paired)\
 | {dt['events_per_s']:,} / {dt['previous_events_per_s']:,} events/s: ratio {dt['ratio']:.2f} | |
"""


if __name__ == "__main__":
    main()
