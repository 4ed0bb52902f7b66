"""What a read may cost: rankings in one pure module with a bounded history read, the history's own
bounded pool, board streams capped per client and per key, board filters held to known scopes.
The floods against a real API process: tests/integration/test_floods.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api import rankings
from api.app import create_app
from api.board.model import BoardConfig
from api.history_reads import Busy, HistoryReads
from api.kpi_targets import Targets
from history.store import HistoryStore
from services.config import Settings
from services.loadgen import random_stream
from stream.folds import Acc
from stream.kpis import KPI_BY_NAME, ranks
from stream.view import View
from tests.support.pipeline import run, to_messages, view_of

NOW = time.time()


def _view() -> View:
    return view_of(asyncio.run(run(to_messages(random_stream(3000, NOW, seed=5, agents=60)), now=NOW)))


def test_ranks_are_competition_ranks_at_any_size() -> None:
    values = [0.5, None, 0.9, 0.5, 0.7] * 400
    quadratic = [sorted(-v if v is not None else float("inf") for v in values).index(
        -v if v is not None else float("inf")) + 1 for v in values]
    assert ranks(values, higher_is_better=True) == quadratic


def test_the_api_and_the_board_rank_alike() -> None:
    view = _view()
    rows = rankings.rank(view, "agent", "csat", "1h", NOW, targets=Targets({}), min_count=1, limit=1000)
    assert len(rows) > 20
    assert [r.rank for r in rows] == sorted(r.rank for r in rows)
    values = [r.value for r in rows]
    assert values == sorted(values, key=lambda v: -v if v is not None else float("inf"))
    from api.board import model

    src = model.Sources(targets=Targets({}), rules=[], alerts=[], compare={}, spark_before={}, live_samples={})
    board = model.rankings(view, BoardConfig(rank_kpi="csat"), src, "agent", NOW, limit=8, min_count=1)
    assert [(b.scope, b.rank) for b in board] == [(r.scope, r.rank) for r in rows[:8]]


@pytest.mark.parametrize(("window", "rows", "read"), [("24h", 2000, 41), ("1h", 2000, 1000), ("24h", 30, 30)])
def test_a_24h_previous_period_reads_at_most_the_cells_bound(window: str, rows: int, read: int) -> None:
    fake = [rankings.Ranking(f"agent:a{i}", f"a{i}", 0.5, 1, 1, None, None) for i in range(rows)]
    chosen = rankings.history_scopes(fake, window)
    assert len(chosen) == read
    assert len(chosen) * (rankings.WINDOWS[window] // 60) <= rankings.MAX_HISTORY_CELLS or len(chosen) == rows


def test_merged_many_equals_merged_per_scope(engine: Engine) -> None:
    store = HistoryStore(engine)
    view = _view()
    t0 = int(NOW // 60) * 60 - 3600
    rows = []
    for scope in [s for s in view.scopes(now=NOW) if s.startswith(("agent:", "team:"))]:
        for m in range(0, 3600, 60):
            acc = view.range_acc(scope, t0 + m, t0 + m + 60, now=NOW)
            if any(acc.v):
                rows.append(("m", scope, t0 + m, acc))
    store.upsert(rows)
    scopes = sorted({r[1] for r in rows}) + ["agent:nobody"]
    many = store.merged_many(scopes, t0, t0 + 3600)
    for s in scopes:
        one, n = store.merged(s, t0, t0 + 3600)
        assert many[s][1] == n
        assert KPI_BY_NAME["csat"].compute(many[s][0]) == KPI_BY_NAME["csat"].compute(one)
    assert many["agent:nobody"][1] == 0 and many["agent:nobody"][0].v == Acc().v


def test_history_reads_are_bounded_and_shared() -> None:
    async def main() -> None:
        reads = HistoryReads(workers=1, waiting=1, keep_s=0.0)
        gate = threading.Event()
        calls = []

        def slow(tag: str) -> str:
            calls.append(tag)
            gate.wait(5)
            return tag

        a = asyncio.ensure_future(reads.run("a", lambda: slow("a"), timeout_s=5))
        a2 = asyncio.ensure_future(reads.run("a", lambda: slow("a again"), timeout_s=5))  # shares a's read
        b = asyncio.ensure_future(reads.run("b", lambda: slow("b"), timeout_s=5))  # waits for the thread
        await asyncio.sleep(0.05)
        with pytest.raises(Busy):
            await reads.run("c", lambda: slow("c"), timeout_s=5)
        gate.set()
        assert await asyncio.gather(a, a2, b) == ["a", "a", "b"]
        assert calls == ["a", "b"] and reads.shared == 1 and reads.refused == 1 and reads.in_hand == 0
        gate.clear()
        with pytest.raises(TimeoutError):
            await reads.run("d", lambda: slow("d"), timeout_s=0.05)
        assert reads.in_hand == 1, "a read that timed out holds its place until its thread ends"
        gate.set()
        reads.close()

    asyncio.run(main())


def test_board_filters_are_held_to_known_scopes_and_queues() -> None:
    known = {"team:billing", "queue:vip", "agent:a1"}
    cfg = BoardConfig(scope="team:made-up-1", queues=("vip", "nope"), rotate=("team:billing", "team:x", "all"))
    k = cfg.known(known)
    assert (k.scope, k.queues, k.rotate) == ("all", ("vip",), ("team:billing", "all"))
    assert BoardConfig(scope="agent:a1").known(known).scope == "agent:a1"
    assert len({BoardConfig(scope=f"team:x{i}").known(known).key() for i in range(300)}) == 1, \
        "300 made-up scopes are one board, one render"


def test_board_streams_beyond_the_cap_are_429_with_retry_after() -> None:
    app = create_app(Settings(api_streams_per_client=3), connect=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        slots = app.state.streams
        for _ in range(3):
            assert slots.take("address testclient", None)  # three streams held open by this client
        r = c.get("/board/stream")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "3 per client address" in r.json()["detail"]
        slots.give_back("address testclient", None)
        with c.stream("GET", "/board/stream") as s:
            assert s.status_code == 200
            assert slots.open == 3


def test_a_history_answer_is_kept_for_the_next_identical_read() -> None:
    async def main() -> None:
        reads = HistoryReads(keep_s=60.0)
        calls: list[int] = []
        for _ in range(40):
            assert await reads.run(("previous", 1), lambda: calls.append(1) or "x", timeout_s=5, keep=True) == "x"
        assert len(calls) == 1 and reads.shared == 39
        await reads.run(("previous", 1), lambda: calls.append(1) or "x", timeout_s=5)  # without keep: read again
        assert len(calls) == 2
        reads.close()

    asyncio.run(main())


def test_measures_are_kept_a_second_and_bounded_by_count() -> None:
    m = rankings.Measures(keep_s=1.0, max_kept=4)
    m.put(("agent", "csat", "1h"), 100.0, [("agent:a", 0.9, 3)])
    assert m.get(("agent", "csat", "1h"), 100.5) == [("agent:a", 0.9, 3)]
    assert m.get(("agent", "csat", "1h"), 101.0) is None and m.get(("team", "csat", "1h"), 100.5) is None
    for i in range(10):
        m.put(("agent", f"k{i}", "1h"), 200.0 + i, [])
    assert len(m._kept) <= 4 and m.get(("agent", "k9", "1h"), 209.5) == []
