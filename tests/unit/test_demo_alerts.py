"""The demo story, on the pure pipeline with a simulated clock: the first incident (team tech) fires a
warning then a critical alert within about three minutes (once its queue has grown past what the
roster can answer), healthy teams stay quiet, and the alerts resolve once the incident has left the
window. Daytime and night-time traffic (the demo follows a day curve, and so does its roster)."""

from __future__ import annotations

import orjson
import pytest

from alerts.engine import Transition
from alerts.evaluator import ScopeEvaluator
from alerts.rules import DEFAULT_RULE_FILE, load_rule_file
from services.demo import DemoTraffic
from services.producer import route
from stream.folds import KpiConfig
from stream.processor import Message, Processor
from tests.support.fakes import MemorySink

Q = 6
DAY, NIGHT = 1795190400.0, 1795143600.0  # 2026-11-20 16:00 and 03:00 UTC


async def simulate(start: float, seconds: int, seed: int) -> list[tuple[int, Transition]]:
    demo = DemoTraffic(start, seed=seed, incident_every=3600)  # one incident in the span
    sink = MemorySink(Q)
    proc = Processor(sink, KpiConfig(fr_targets={"vip": 1800.0}), 60, 7 * 86400)
    ev = ScopeEvaluator(60, Q)
    for q in range(Q):
        ev.load(q, [])
    rules = {r.id: r for r in load_rule_file(DEFAULT_RULE_FILE)[0]}
    offsets: dict[tuple[str, int], int] = {}
    seen = dict.fromkeys(range(Q), 0)
    out = []
    for step in range(seconds):
        now = start + step
        msgs = []
        for e in demo.due(now):
            kind, key = route(e)
            p = sum(key) % Q
            o = offsets.get((kind, p), 0)
            offsets[(kind, p)] = o + 1
            msgs.append(Message(kind, p, o, key, orjson.dumps(e)))
        await proc.process(msgs, now=now)
        touched: dict[int, set[str]] = {}
        for q in range(Q):
            recs = sink.scoped.get(q, [])
            for k, v in recs[seen[q]:]:
                touched.setdefault(q, set()).update(ev.apply(q, k, v))
            seen[q] = len(recs)
        # like the worker: on every batch for the touched scopes, and everything every 10 s
        only = None if step % 10 == 0 else {q: touched.get(q, set()) for q in range(Q)}
        out += [(step, t) for t in ev.evaluate(rules, now=now, only=only)]
        ev.drain()
    return out


@pytest.mark.parametrize(("start", "seed"), [(DAY, 1), (NIGHT, 13)])
async def test_demo_incident_fires_warning_then_critical_and_resolves(start: float, seed: int) -> None:
    out = await simulate(start, 1200, seed)
    tech = [(s, t) for s, t in out if t.scope == "team:tech" and t.rule_id == "abandonment-high"
            and t.kind in ("firing", "severity_changed", "resolved")]
    steps = [(t.kind, t.severity) for _, t in tech]
    assert steps[:2] == [("firing", "warning"), ("severity_changed", "critical")], steps
    assert steps[-1][0] == "resolved" and [k for k, _ in steps].count("resolved") == 1, steps
    assert 45 <= tech[0][0] <= 180 and tech[1][0] <= 200, "warning, then critical, within about three minutes"
    assert len({t.alert_id for _, t in tech}) == 1
    assert tech[-1][0] > 250, "resolves after the incident (which lasts 240 s) has left the 5 min window"
    understaffed = [s for s, t in out if t.rule_id == "understaffed" and t.scope == "queue:tech-line"
                    and t.kind == "firing"]
    assert understaffed and understaffed[0] < tech[0][0], "the lead hears the queue is short before callers abandon"
    fired = {(t.rule_id, t.scope) for _, t in out if t.kind == "firing"}
    assert ("service-level-low", "team:tech") in fired
    assert not {f for f in fired if f[1].startswith("team:") and f[1] != "team:tech"}, "healthy teams stay quiet"
