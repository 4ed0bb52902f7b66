"""KPI worker throughput with agent events in the mix, paired with the same run without them.

The same bench events (every type, 200 agents), once as they are and once with 30 % of them
replaced by `agent.state` events of 200 agents going through their day (services/loadgen.py
`agent_shift`): each through a fresh KPI worker on topics of its own, A B A B, the rate from the
first state record to the counters reaching every event (bench/run.py `watch_state`). The ratio is
taken pair by pair.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.config import Settings
from services.loadgen import agent_shift
from services.topics import ensure_topics

SHARE = 0.3
PAIRS = 2


def mixed(events: list[dict[str, Any]], share: float = SHARE) -> list[dict[str, Any]]:
    """`events` with every n-th replaced by an agent event, `share` of them in all (same count)."""
    k = int(len(events) * share)
    agents = iter(agent_shift(k, time.time(), agents=200))
    step = len(events) / k
    picks = {int(i * step) for i in range(k)}
    return [next(agents) if i in picks else ev for i, ev in enumerate(events)]


def paired_rates(bootstrap: str, without: list[dict[str, Any]], with_: list[dict[str, Any]], tag: str, logs: Path,
                 start: Callable[..., Any], produce_all: Callable[[Settings, list[dict[str, Any]]], float],
                 watch_state: Callable[[Settings, int], Any], run: str,
                 say: Callable[[float, float], None]) -> list[dict[str, float]]:
    """A fresh KPI worker on each stream, on topics of its own, A B A B: PAIRS pairs of rates (events/s,
    first state record to the counters reaching every event) and their ratio, pair by pair."""
    pairs = []
    for r in range(PAIRS):
        rate = {}
        for label, evs in (("without", without), ("with", with_)):
            s = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=f"bench{tag}{r}{label}.")
            ensure_topics(s)
            produce_all(s, evs)
            worker = start("services.worker", s, logs / f"worker-{tag}.log",
                           SQM_GROUP_ID=f"bench-{tag}-{run}-{r}-{label}", SQM_WORKER_ID=f"bench-{tag}-{r}-{label}",
                           SQM_WORKER_ROLE="kpis")
            try:
                first, last = asyncio.run(watch_state(s, len(evs)))
            finally:
                worker.terminate()
                worker.wait(15)
            rate[label] = len(evs) / max(last - first, 1e-6)
        pairs.append({"without": round(rate["without"]), "with": round(rate["with"]),
                      "ratio": round(rate["with"] / rate["without"], 3)})
        say(rate["with"], rate["without"])
    return pairs


def agent_mix(bootstrap: str, events: list[dict[str, Any]], logs: Path, start: Callable[..., Any],
              produce_all: Callable[[Settings, list[dict[str, Any]]], float],
              watch_state: Callable[[Settings, int], Any], run: str, say: Callable[[str], None]) -> dict[str, Any]:
    with_agents = mixed(events)
    share = sum(e["type"] == "agent.state" for e in with_agents) / len(with_agents)
    pairs = paired_rates(bootstrap, events, with_agents, "ag", logs, start, produce_all, watch_state, run,
                         lambda w, wo: say(f"  agent events {share:.0%} of the mix: {w:,.0f}/s against {wo:,.0f}/s "
                                           f"without (ratio {w / wo:.2f})"))
    return {"agent_share": round(share, 3), "pairs": pairs,
            "ratio": statistics.median(p["ratio"] for p in pairs),
            "with": statistics.median(p["with"] for p in pairs),
            "without": statistics.median(p["without"] for p in pairs)}
