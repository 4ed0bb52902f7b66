"""The monotonic KPI counters (`sqm_kpi_*_total`): equal to the oracle, exact across a crash and a
replay, never lower from one read to the next, kept when the buckets expire."""

from __future__ import annotations

import math
import random

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import TOTALS, build_registry
from services.loadgen import random_stream
from stream.folds import FIELDS, Acc, KpiConfig
from stream.kpis import compute
from stream.processor import Processor
from stream.records import TotalKey, decode_key
from stream.view import View
from tests.support import oracle
from tests.support.fakes import MemorySink
from tests.support.pipeline import NOW, run, to_messages, view_of

# the KPIs a counter pair gives: every windowed KPI but the percentiles
RATIOS = [name for name in compute(Acc()) if not name.endswith("_p90_s")]


class _Feed:
    warm = True
    latest_record_ts = NOW


def _kpis_of_totals(view: View, scope: str) -> dict[str, tuple[float | None, int]]:
    found = view.kpi_totals(scope)
    assert found is not None, f"no totals for {scope}"
    return compute(Acc(list(found[0])))


async def test_totals_equal_the_oracle_for_every_scope() -> None:
    events = random_stream(3000, NOW, seed=11)
    view = view_of(await run(to_messages(events)))
    scopes = set().union(*(oracle.scopes(e) for e in events))
    checked = 0
    for scope in sorted(s for s in scopes if not s.startswith("agent:")):
        expected = oracle.kpis(events, scope, "24h", NOW)  # every event is within 24 h
        got = _kpis_of_totals(view, scope)
        for name in RATIOS:
            value, count, _ = expected[name]
            assert got[name][1] == count, f"{scope} {name}: count {got[name][1]} != {count}"
            if value is None:
                assert got[name][0] is None
            else:
                assert math.isclose(got[name][0] or 0.0, value, rel_tol=1e-9, abs_tol=1e-6), (scope, name)
        checked += 1
    assert checked >= 12  # all, teams, channels, tiers, queues


async def test_agent_totals_only_when_asked() -> None:
    events = random_stream(500, NOW, seed=3)
    agents = sorted({s for e in events for s in oracle.scopes(e) if s.startswith("agent:")})
    assert agents
    view = view_of(await run(to_messages(events)))
    assert view.kpi_totals(agents[0]) is None
    sink = MemorySink()
    proc = Processor(sink, KpiConfig(agent_totals=True), 60, 7 * 86400)
    await proc.process(to_messages(events), now=NOW)
    totals = view_of(sink).kpi_totals(agents[0])
    assert totals is not None and sum(totals[0]) > 0


async def test_totals_exact_after_a_crash_and_redelivery() -> None:
    """A worker dies after writing part of its state; the next one reloads it and the broker redelivers
    everything since the start: each event is in the totals exactly once."""
    events = random_stream(2000, NOW, seed=5)
    msgs = to_messages(events)
    clean = view_of(await run(msgs))
    sink = MemorySink()
    half = len(msgs) // 2
    await run(msgs[:half], sink=sink)
    # a new worker on the same state topic, sent everything again (its offsets were never committed)
    again = view_of(await run(msgs, sink=sink))
    for scope in ("all", "team:billing", "channel:voice", "tier:vip"):
        assert again.kpi_totals(scope) == clean.kpi_totals(scope), scope


async def test_totals_never_go_down_and_survive_expiry() -> None:
    """Read after every state record, as a scrape could: no counter is ever lower than at the read
    before (Prometheus would take that for a restart), not even once every bucket has expired."""
    events = random_stream(600, NOW, seed=9)
    sink = MemorySink()
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    msgs = to_messages(events)
    rnd = random.Random(2)
    i = 0
    while i < len(msgs):
        n = rnd.randint(1, 80)
        await proc.process(msgs[i:i + n], now=NOW)
        i += n
    await proc.process(msgs, now=NOW)  # a redelivery of everything: no change
    later = NOW + 2 * 86400
    for st in proc.states.values():
        st.expire(now=later)
    await proc.process([], now=later)
    for st in proc.states.values():
        st.expire(now=later)
    await proc.process([], now=later)
    view, last = View(60), {}
    for k, v in sink.all_records():
        view.apply(k, v)
        for scope in ("all", "team:billing", "queue:sales", "tier:standard"):
            found = view.kpi_totals(scope)
            if found is None:
                continue
            prev = last.get(scope)
            if prev is not None:
                assert all(a >= b for a, b in zip(found[0], prev, strict=True)), scope
            last[scope] = found[0]
    assert not any(st.buckets for st in proc.states.values())  # every bucket is gone ...
    final = view_of(sink)
    assert final.kpi_totals("all") == view_of(await run(msgs)).kpi_totals("all")  # ... and the totals stay


async def test_a_total_record_per_touched_scope_and_not_for_agents() -> None:
    sink = await run(to_messages(random_stream(300, NOW, seed=4)))
    keys = [decode_key(k) for k, _ in sink.all_records()]
    totals = [k for k in keys if isinstance(k, TotalKey)]
    assert totals and not any(k.scope.startswith("agent:") for k in totals)


async def test_metrics_serve_one_counter_family_per_field() -> None:
    events = random_stream(800, NOW, seed=8)
    view = view_of(await run(to_messages(events)))
    registry, _ = build_registry(view, _Feed(), agent_limit=0)
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert set(TOTALS) == set(FIELDS)
    for name, _ in TOTALS.values():
        fam = fams[f"sqm_kpi_{name}"]
        assert fam.type == "counter", name
        assert all(s.name == f"sqm_kpi_{name}_total" for s in fam.samples)
        assert {s.labels["kind"] for s in fam.samples} <= {"all", "team", "queue", "channel", "tier"}
    created = {s.labels["scope"]: s.value for s in fams["sqm_kpi_tickets_created"].samples}
    expected = oracle.kpis(events, "all", "24h", NOW)["tickets_created"][1]
    assert created["all"] == expected
    # a queue is a call dimension: it has call counters and no ticket counters (not zeros)
    queues = {s.labels["scope"] for s in fams["sqm_kpi_calls_offered"].samples if s.labels["kind"] == "queue"}
    assert queues and not queues & set(created)


async def test_no_counters_until_the_view_is_warm() -> None:
    """While the API still reads the state topic, a partial sum followed by the full one would read as
    events to `increase()`: the counters appear only once the view is warm."""
    view = view_of(await run(to_messages(random_stream(200, NOW, seed=6))))

    class Cold(_Feed):
        warm = False

    registry, _ = build_registry(view, Cold(), agent_limit=0)
    text = generate_latest(registry).decode()
    assert "sqm_first_response_sla_ratio{" in text  # the gauges are served ...
    assert "sqm_kpi_tickets_created_total" not in text and "sqm_events_total" not in text  # ... not the counters
