"""The KPI history without a broker, on SQLite and PostgreSQL: minute rows from state records, exact
series and comparisons against the oracle, idempotent rewrites, rollup to hours, backfill."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy.engine import Engine

from history.backfill import fold_lines
from history.minutes import Minutes
from history.series import HOUR, MINUTE, floor, previous_window
from history.store import HistoryStore
from services.loadgen import AGE_BANDS, random_stream
from stream.folds import KpiConfig
from stream.kpis import compute
from tests.support import oracle
from tests.support.pipeline import NOW, run, to_messages

SCOPES = ["all", "team:billing", "agent:a3", "channel:phone", "tier:vip", "queue:q1"]


def as_kpis(acc: object) -> dict[str, dict[str, object]]:
    return {k: {"value": v, "count": c} for k, (v, c) in compute(acc).items()}  # type: ignore[arg-type]


async def written_history(engine: Engine, events: list[dict[str, object]], now: float) -> HistoryStore:
    """Events -> worker state records -> Minutes -> the store, as the history writer does."""
    sink = await run(to_messages(events), now=now)
    minutes = Minutes()
    for k, v in sink.all_records():
        minutes.apply(k, v)
    fresh, final = minutes.drain(now)
    store = HistoryStore(engine)
    store.upsert(fresh)
    store.insert_missing(final)
    return store


async def test_windows_from_history_equal_the_oracle(engine: Engine) -> None:
    events = random_stream(1500, NOW, seed=21)
    store = await written_history(engine, events, NOW)
    for scope in SCOPES:
        for window, w in (("5m", 300), ("1h", 3600), ("24h", 86400)):
            start, end = previous_window(NOW, w, 0)
            acc, _ = store.merged(scope, floor(start, MINUTE), floor(end, MINUTE) + MINUTE)
            oracle.assert_matches(as_kpis(acc), oracle.kpis(events, scope, window, NOW), f"{scope}/{window}")


async def test_rewriting_counts_nothing_twice_and_rollup_keeps_the_sums(engine: Engine) -> None:
    events = random_stream(800, NOW, seed=22)
    store = await written_history(engine, events, NOW)
    before = store.merged("all", 0, int(NOW) + 60)[0]
    await written_history(engine, events, NOW)  # a restarted writer writes every row again
    again = store.merged("all", 0, int(NOW) + 60)[0]
    assert again.v == before.v
    rolled = store.rollup(cutoff=floor(NOW, HOUR))
    assert rolled > 0
    after = store.merged("all", 0, int(NOW) + 60)[0]
    assert after.v == pytest.approx(before.v) and after.fr_sketch.bins == before.fr_sketch.bins
    assert {r for r, _, _ in store.rows("all", 0, floor(NOW, HOUR))} == {"h"}
    assert store.rollup(cutoff=floor(NOW, HOUR)) == 0
    assert store.purge(int(NOW) + 60) > 0 and store.rows("all", 0, int(NOW) + 60) == []


async def test_series_per_step_is_exact(engine: Engine) -> None:
    events = random_stream(1000, NOW, seed=23, bands=((60, 3500),))
    store = await written_history(engine, events, NOW)
    start = floor(NOW - 3600, 900)
    series = store.series("team:tech", start, int(NOW), 900)
    assert [t for t, _ in series] == list(range(start, int(NOW), 900))
    for t, acc in series:  # each step against the oracle's exact (t, t + 900] ... via event times
        step_events = [e for e in events if t <= oracle._t(str(e["ts"])) < t + 900]
        want = oracle.kpis(step_events, "team:tech", "24h", NOW)
        oracle.assert_matches(as_kpis(acc), want, f"step {t}")


def test_backfill_of_an_earlier_day_equals_the_oracle_and_replaces_itself(engine: Engine) -> None:
    day = NOW - 86400
    events = random_stream(1200, day, seed=24, bands=AGE_BANDS)
    lines = [orjson.dumps(e) for e in events] + [orjson.dumps(events[0]), b"not json", b""]
    rows, stats = fold_lines(lines, now=NOW, cfg=KpiConfig(), minute_cutoff=floor(day - 10 * 3600, HOUR),
                             until=None)
    assert (stats.events, stats.duplicates, dict(stats.rejected)) == (len(events), 1, {"not_json": 1})
    store = HistoryStore(engine)
    store.replace_source("backfill:day.jsonl", rows)
    store.replace_source("backfill:day.jsonl", rows)  # the same file again replaces, never adds
    for scope in SCOPES:
        for window, w in (("5m", 300), ("15m", 900), ("1h", 3600)):
            start, end = previous_window(NOW, w, 86400)
            acc, _ = store.merged(scope, floor(start, MINUTE), floor(end, MINUTE) + MINUTE)
            oracle.assert_matches(as_kpis(acc), oracle.kpis(events, scope, window, day), f"{scope}/{window}")
    # events from `until` on are the live writer's
    _, stats = fold_lines(lines, now=NOW, cfg=KpiConfig(), minute_cutoff=0, until=day - 600)
    assert stats.live > 0 and stats.events + stats.live == len(events)


def test_backfilled_agent_time_equals_the_oracle(engine: Engine) -> None:
    """Agent events of a file in any order: time in state per the spec, minutes and hours alike."""
    import random

    from services.loadgen import agent_state

    rnd, day = random.Random(5), floor(NOW - 86400, HOUR)
    events = []
    for a in range(6):
        t = day - 5 * 3600 + rnd.uniform(0, 600)
        while t < day:
            state = rnd.choice(["available", "on_contact", "after_contact_work", "away", "offline"])
            events.append(agent_state(t, f"a{a}", state, team=["tech", "billing"][a % 2],
                                      queues=[f"q{a % 3}"], **({"reason": "break"} if state == "away" else {})))
            t += rnd.expovariate(1 / 240)
    last = max(oracle._t(str(e["ts"])) for e in events)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    cutoff = day - 2 * 3600  # older than this: hour rows
    rows, _ = fold_lines([orjson.dumps(e) for e in shuffled], now=NOW, cfg=KpiConfig(), minute_cutoff=cutoff,
                         until=None)
    # an `until` inside a minute books nothing negative (a spell that starts after it books nothing)
    cut_rows, _ = fold_lines([orjson.dumps(e) for e in shuffled], now=NOW, cfg=KpiConfig(),
                             minute_cutoff=cutoff, until=day - 3 * HOUR + 30.5)
    assert all(x >= 0 for *_, acc in cut_rows for x in acc.v)
    assert {r for r, *_ in rows} == {"h", "m"}
    store = HistoryStore(engine)
    store.replace_source("backfill:agents.jsonl", rows)
    in_time = sorted(events, key=lambda e: oracle._t(str(e["ts"])))
    agent_rows = [acc for _, sc, _, acc in rows if sc.startswith("agent:")]
    assert not any(acc.t_available or acc.t_on_contact or acc.t_acw or acc.t_away for acc in agent_rows)
    for scope in ("all", "team:tech", "queue:q1"):
        for start, end in ((day - 5 * HOUR, day - 2 * HOUR), (cutoff, floor(last, MINUTE)),
                           (day - 3 * HOUR, day - 2 * HOUR)):
            acc, _ = store.merged(scope, start, end)
            want = oracle.agent_time(in_time, scope, start, end)
            got = {"available": acc.t_available, "on_contact": acc.t_on_contact,
                   "after_contact_work": acc.t_acw, "away": acc.t_away}
            assert got == pytest.approx(want), (scope, start, end)
            assert sum(want.values()) > 0
