"""Floods against a real API process (loopback only, bounded in count and time): 300 board streams from
one client, and 40 concurrent 24 h agent rankings over 2,000 agents. Normal clients meanwhile get
their answers and their board pushes within a second."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from services.loadgen import random_stream
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
TOKEN = "flood-test-admin-token-0123456789"
AGENTS = 2000


async def _timed_get(c: httpx.AsyncClient, path: str, **params: str) -> float:
    t = time.perf_counter()
    r = await c.get(path, params=params, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return time.perf_counter() - t


async def _first_push(c: httpx.AsyncClient) -> float:
    """Seconds from opening a board stream to its first section (the board as a screen first sees it)."""
    t = time.perf_counter()
    async with c.stream("GET", "/board/stream", timeout=30) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                return time.perf_counter() - t
    raise AssertionError("the stream ended without a section")


async def _normal_client(url: str, seconds: float) -> dict[str, float]:
    """The worst /healthz, /v1/kpis and first board push of a keyed client, one of each every 0.2 s."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as c:
        health, kpis, pushes = [], [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            health.append(await _timed_get(c, "/healthz"))
            kpis.append(await _timed_get(c, "/v1/kpis", scope="all", window="1h"))
            pushes.append(await _first_push(c))
            await asyncio.sleep(0.2)
        return {"healthz": max(health), "kpis": max(kpis), "push": max(pushes), "n": len(health)}


def test_floods_leave_normal_clients_alone(stack: Stack) -> None:
    stack.env.update(SQM_ADMIN_TOKEN=TOKEN)
    stack.worker("w1", role="kpis")
    stack.api()
    events = random_stream(12_000, time.time(), seed=31, agents=AGENTS)
    produce(stack, events, batched=True)
    wait_for(lambda: stack.seen_messages() >= len(events), 180, "every event counted", stack)
    agents = httpx.get(stack.url + "/v1/scopes", params={"kind": "agent"}, timeout=10).json()["scopes"]
    assert len(agents) >= 1500, len(agents)

    async def streams_flood() -> tuple[list[int], dict[str, Any]]:
        async with httpx.AsyncClient(base_url=stack.url, limits=httpx.Limits(max_connections=400)) as c:
            opened: list[Any] = []

            async def open_one() -> int:
                cm = c.stream("GET", "/board/stream", timeout=30)
                r = await cm.__aenter__()
                opened.append(cm)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) > 0
                return r.status_code

            codes = await asyncio.gather(*(open_one() for _ in range(300)))
            normal = await _normal_client(stack.url, 8.0)
            for cm in opened:
                await cm.__aexit__(None, None, None)
            return list(codes), normal

    codes, normal = asyncio.run(streams_flood())
    assert codes.count(200) == 20 and codes.count(429) == 280, "one client: 20 streams (SQM_API_STREAMS_PER_CLIENT)"
    print(f"300 streams from one client: 20 open, 280 refused; a normal client meanwhile, at worst of "
          f"{normal['n']:.0f}: /healthz {normal['healthz']:.3f} s, /v1/kpis {normal['kpis']:.3f} s, first board "
          f"push {normal['push']:.3f} s")
    assert max(normal["healthz"], normal["kpis"], normal["push"]) < 1.0

    async def rankings_flood() -> tuple[list[int], dict[str, Any]]:
        async with httpx.AsyncClient(base_url=stack.url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     limits=httpx.Limits(max_connections=100)) as c:
            async def rank(i: int) -> int:
                kpi = ("csat", "fcr_rate", "aht_s", "nps")[i % 4]
                r = await c.get("/v1/rankings", params={"kind": "agent", "window": "24h", "kpi": kpi,
                                                        "limit": "1000"}, timeout=60)
                return r.status_code

            flood = asyncio.ensure_future(asyncio.gather(*(rank(i) for i in range(40))))
            normal = await _normal_client(stack.url, 6.0)
            return list(await flood), normal

    t = time.perf_counter()
    codes, normal = asyncio.run(rankings_flood())
    took = time.perf_counter() - t
    print(f"40 concurrent 24 h agent rankings over {len(agents)} agents: {codes.count(200)} answered 200 (others "
          f"429 for the read rate) in {took:.1f} s; meanwhile, at worst of {normal['n']:.0f}: /healthz "
          f"{normal['healthz']:.3f} s, /v1/kpis {normal['kpis']:.3f} s, first board push {normal['push']:.3f} s")
    assert set(codes) <= {200, 429} and codes.count(200) >= 1
    assert max(normal["healthz"], normal["kpis"], normal["push"]) < 1.0
