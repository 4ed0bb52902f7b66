"""KPI history end to end: a backfilled earlier day plus live events through the real broker, the
history writer (killed and restarted mid-stream) and the API, against the oracle."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from services.broker import EmbeddedBroker
from services.loadgen import AGE_BANDS, random_stream
from tests.support import oracle
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
SCOPES = ["all", "team:billing", "agent:a3", "channel:phone", "tier:vip", "queue:q1"]


def history_rows(stack: Stack) -> int:
    from sqlalchemy import create_engine, text
    eng = create_engine(stack.env["SQM_DATABASE_URL"])
    with eng.connect() as c:
        n = c.execute(text("SELECT count(*) FROM kpi_history WHERE source = 'live'")).scalar()
    eng.dispose()
    return int(n or 0)


def test_backfilled_day_live_events_and_a_writer_restart_agree_with_the_oracle(broker: EmbeddedBroker,
                                                                               tmp_path: Path) -> None:
    now = time.time()
    yesterday = random_stream(1500, now - 86400, seed=31, bands=AGE_BANDS[:3])
    today = random_stream(1500, now, seed=32, bands=AGE_BANDS[:3])
    stack = Stack(broker, tmp_path)
    try:
        path = tmp_path / "yesterday.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(e) for e in yesterday) + b"\n")
        # the backfill runs while the worker and the API start (neither writes history); it ends before the
        # history writer starts, whose first live minute would otherwise bound what the backfill writes
        backfill = subprocess.Popen([sys.executable, "-m", "services.backfill", str(path)], env=stack.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stack.worker()
        stack.api()
        try:
            stdout, stderr = backfill.communicate(timeout=120)
        finally:
            backfill.kill()  # a no-op once it has ended
        assert backfill.returncode == 0, stderr
        assert f"{len(yesterday)} events folded" in stdout
        stack.history_writer()
        produce(stack, today[:800])
        wait_for(lambda: stack.seen_messages() >= 800, 90, "the first half", stack)
        wait_for(lambda: history_rows(stack) > 0, 60, "live history rows", stack)
        stack.kill("history")  # SIGKILL mid-stream: the restarted writer rewrites, never adds
        produce(stack, today[800:])
        stack.history_writer("history2")
        wait_for(lambda: stack.seen_messages() >= len(today), 90, "every event", stack)
        checked_at = time.time()

        def compare(scope: str, window: str) -> dict[str, dict[str, float | None]]:
            r = httpx.get(stack.url + "/v1/kpis", params={"scope": scope, "window": window,
                                                          "compare": "yesterday"}, timeout=10)
            r.raise_for_status()
            return r.json()["kpis"]  # type: ignore[no-any-return]

        for scope in SCOPES:
            for window in ("5m", "15m", "1h"):
                got = compare(scope, window)
                want = oracle.kpis(yesterday, scope, window, checked_at - 86400)
                prev = {k: {"value": v["previous"], "count": v["previous_count"]} for k, v in got.items()
                        if k in want}
                oracle.assert_matches(prev, want, f"yesterday {scope}/{window}")
                assert got["tickets_created"]["change"] == pytest.approx(
                    got["tickets_created"]["value"] - got["tickets_created"]["previous"])
                live = got["backlog" if scope != "queue:q1" else "calls_waiting"]
                assert live.get("previous") is None  # the live state has no history

        def history_matches() -> bool:
            r = httpx.get(stack.url + "/v1/kpis/history", params={
                "scope": "all", "kpi": "tickets_created", "from": _iso(checked_at - 3000),
                "to": _iso(checked_at + 60), "step": "1h"}, timeout=10).json()
            return sum(p["count"] for p in r["points"]) == sum(
                1 for e in today if e["type"] == "ticket.created" and oracle._t(e["ts"]) >= _floor_h(checked_at - 3000))

        wait_for(history_matches, 30, "the live history to hold every ticket once", stack)
        # every step of the backfilled day, per 15 minutes, equals the oracle on that step's events
        r = httpx.get(stack.url + "/v1/kpis/history", params={
            "scope": "team:billing", "kpi": "csat", "from": _iso(now - 86400 - 1500), "to": _iso(now - 86400),
            "step": "15m"}, timeout=10).json()
        assert r["points"]
        for p in r["points"]:
            t0 = oracle._t(p["t"])
            step = [e for e in yesterday if t0 <= oracle._t(e["ts"]) < t0 + 900]
            want = oracle.kpis(step, "team:billing", "24h", t0 + 899.999)["csat"]
            assert (p["value"], p["count"]) == (pytest.approx(want[0]) if want[0] is not None else None, want[1])
    finally:
        stack.stop()


def _iso(ts: float) -> str:
    from stream.clock import rfc3339
    return rfc3339(ts)


def _floor_h(ts: float) -> float:
    return ts // 3600 * 3600
