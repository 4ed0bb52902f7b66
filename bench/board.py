"""Board benchmarks: event -> figure on open boards (SSE clients), and the API's cost of many screens.

- `board_latency`: `boards` SSE clients watch /board/stream of one team; under the background load,
  each probe opens a ticket in that team and is timed, per client, from `send` to the tiles event
  that shows the new backlog.
- `sse_cost`: `clients` SSE clients on a handful of board configurations (as wall screens would be)
  for `seconds`, under the load; the API process's CPU (share of one core) and RSS are sampled.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from typing import Any

import httpx
import orjson
import psutil
from kafka import KafkaProducer

from services.config import Settings
from services.loadgen import ticket

BACKLOG = re.compile(r'data-kpi="backlog" data-scope="team:([^"]+)" data-value="([^"]+)"')


async def _watch(url: str, team: str, seen: dict[int, list[float]], stop: asyncio.Event, connected: list[int]) -> None:
    """One screen: parse every tiles event; record when each backlog value first appears."""
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as r:
        event = None
        connected[0] += 1
        async for line in r.aiter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "tiles":
                m = BACKLOG.search(line)
                if m and m.group(1) == team:
                    seen.setdefault(int(float(m.group(2))), []).append(time.time())


def board_latency(s: Settings, api: str, boards: int, probes: int, producer: KafkaProducer) -> list[float]:
    """Seconds from send to figure, one value per (probe, board)."""
    team = f"board{uuid.uuid4().hex[:6]}"
    url = f"{api}/board/stream?team={team}&window=5m"
    seen: dict[int, list[float]] = {}
    sent: dict[int, float] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    counter = [0]

    async def clients() -> None:
        await asyncio.gather(*(_watch(url, team, seen, stop, counter) for _ in range(boards)), return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(clients(),), daemon=True)
    thread.start()
    deadline = time.time() + 60
    while counter[0] < boards and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # every screen got its first snapshot
    for k in range(1, probes + 1):
        now = time.time()
        ev = ticket("ticket.created", now, now, f"{team}-{k}", team=team, event_id=f"{team}-{uuid.uuid4()}")
        sent[k] = time.time()
        producer.send(s.topic("tickets"), key=ev["ticket_id"].encode(), value=orjson.dumps(ev))
        producer.flush()
        end = time.time() + 30
        while len(seen.get(k, [])) < boards and time.time() < end:
            time.sleep(0.01)
        time.sleep(0.3)
    loop.call_soon_threadsafe(stop.set)
    return [t - sent[k] for k in sent for t in seen.get(k, [])[:boards]]


def sse_cost(api: str, pid: int, clients: int, seconds: float) -> dict[str, Any]:
    """The API's CPU (percent of one core) and RSS while `clients` boards are open."""
    configs = ["", "?team=billing", "?team=tech", "?kiosk=1&lang=zh-CN", "?scope=queue:q1&window=15m"]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    counter = [0]
    events = [0]

    async def screen(url: str) -> None:
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", url) as r:
            counter[0] += 1
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    events[0] += 1
                if stop.is_set():
                    return

    async def all_screens() -> None:
        await asyncio.gather(*(screen(f"{api}/board/stream{configs[i % len(configs)]}") for i in range(clients)),
                             return_exceptions=True)

    threading.Thread(target=loop.run_until_complete, args=(all_screens(),), daemon=True).start()
    deadline = time.time() + 60
    while counter[0] < clients and time.time() < deadline:
        time.sleep(0.1)
    proc = psutil.Process(pid)
    time.sleep(3)
    c0, t0, e0 = proc.cpu_times(), time.time(), events[0]
    rss = []
    while time.time() - t0 < seconds:
        time.sleep(1)
        rss.append(proc.memory_info().rss)
    c1, t1 = proc.cpu_times(), time.time()
    loop.call_soon_threadsafe(stop.set)
    cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
    return {"clients": counter[0], "cpu_percent_of_one_core": round(100 * cpu, 1),
            "rss_mb": round(max(rss) / 2**20, 1), "events_per_s": round((events[0] - e0) / (t1 - t0), 1)}
