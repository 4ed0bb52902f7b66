"""The voice of the customer in `make bench` (docs/voice.md): the scorer's accuracy on the labelled
comments (tests/data/voice_labelled.jsonl, held out from the tuning set tests/data/voice_dev.jsonl),
its cost per comment, the first comment after a fresh start, the topic index's memory, and the KPI
worker's throughput on a survey-heavy stream with a comment on every survey against the same stream
without comments (A B A B, the ratio pair by pair).

    python -m bench.voice            # accuracy, cost and memory only (no broker)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream.voice import LABELS, Analyser, default_analyser, topic_lexicon

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
LABELLED = DATA / "voice_labelled.jsonl"
DEV = DATA / "voice_dev.jsonl"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def accuracy(rows: list[dict[str, Any]], analyser: Analyser | None = None) -> dict[str, Any]:
    """Per language: accuracy on the clearly positive and negative comments, the share of neutral ones
    read as polar, and the three-way accuracy on all of them; the misread ones, for the docs."""
    a = analyser or default_analyser()
    out: dict[str, Any] = {}
    for lang in sorted({r["language"] for r in rows}):
        mine = [r for r in rows if r["language"] == lang]
        got = []
        for r in mine:
            v = a.analyse(r["text"], language=None, csat=None, nps=None)  # the language detected, as a worst case
            got.append(v.label if v is not None else "neutral")
        clear = [(r, g) for r, g in zip(mine, got, strict=True) if r["clear"] and r["label"] != "neutral"]
        neutral = [(r, g) for r, g in zip(mine, got, strict=True) if r["label"] == "neutral"]
        kinds: Counter[str] = Counter()
        wrong_kinds: Counter[str] = Counter()
        for r, g in clear:
            kinds[r["kind"]] += 1
            wrong_kinds[r["kind"]] += g != r["label"]
        out[lang] = {
            "comments": len(mine), "clear_polar": len(clear),
            "clear_accuracy": round(sum(g == r["label"] for r, g in clear) / len(clear), 3),
            "neutral": len(neutral),
            "neutral_as_polar": round(sum(g != "neutral" for _, g in neutral) / len(neutral), 3) if neutral else None,
            "three_way_accuracy": round(sum(g == r["label"] for r, g in zip(mine, got, strict=True)) / len(mine), 3),
            "clear_errors_by_kind": {k: f"{wrong_kinds[k]}/{n}" for k, n in sorted(kinds.items())},
            "misread": [f"{r['text']} ({r['label']} read {g})" for r, g in clear if g != r["label"]],
        }
    return out


def cost(rows: list[dict[str, Any]], repeat: int = 20) -> dict[str, Any]:
    """Microseconds per comment (the labelled comments, scored `repeat` times), per language."""
    a = default_analyser()
    a.warm()
    out: dict[str, Any] = {}
    for lang in ("zh", "en"):
        texts = [r["text"] for r in rows if r["language"] == lang]
        t0 = time.perf_counter()
        for _ in range(repeat):
            for t in texts:
                a.analyse(t, language=lang, csat=None, nps=None)
        out[f"{lang}_us_per_comment"] = round((time.perf_counter() - t0) / (repeat * len(texts)) * 1e6, 1)
    return out


def first_comment_s() -> float:
    """Seconds from a fresh interpreter's start to the first Chinese comment scored (voice.md: <= 10 s)."""
    code = ("import time; t=time.perf_counter(); from stream.voice import default_analyser; "
            "default_analyser().analyse('物流信息一直不更新', language=None, csat=None, nps=None); "
            "print(time.perf_counter()-t)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return round(float(res.stdout.strip().splitlines()[-1]), 2)


def topic_memory(days: float = 2.0, per_minute: int = 30) -> dict[str, Any]:
    """The topic buckets of one partition after `days` of a heavy stream (`per_minute` negative or
    neutral comments a minute on 4 teams, every topic of the lexicon and fallback words), as traced
    by tracemalloc: the bound in practice against TOPICS_PER_BUCKET."""
    from datetime import UTC, datetime

    from stream.folds import KpiConfig
    from stream.records import TOPICS_PER_BUCKET
    from stream.state import PartitionState

    rows = [r for r in load(LABELLED) + load(DEV) if r["label"] != "positive"]
    now = time.time()
    st = PartitionState(0, KpiConfig(), 60, 86400)
    st.analyser.warm()
    n = int(days * 1440 * per_minute)
    start = now - days * 86400 + 600  # inside the topic horizon (48 h)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        r = rows[i % len(rows)]
        ts = datetime.fromtimestamp(start + i * 60 / per_minute, UTC).isoformat()
        ev = {"event_id": f"m{i}", "type": "survey.submitted", "ts": ts, "survey_id": f"s{i}",
              "team": f"team{i % 4}", "channel": "chat", "customer_tier": "standard", "csat": 2,
              "comment": r["text"]}
        st.apply("surveys", i, orjson.dumps(ev), now=start + i * 60 / per_minute + 1)
        if i % 5000 == 0:
            st.drain()
    st.drain()
    st.comments.clear()
    st.buckets.clear()
    st.totals.clear()
    st.seen.clear()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    scopes = {s for s, _ in st.topics}
    widest = max(len(tb.counts) for tb in st.topics.values())
    return {"comments": n, "days": days, "scopes": len(scopes), "topic_buckets": len(st.topics),
            "widest_bucket_topics": widest,
            "topics_per_bucket_bound": len(topic_lexicon()[0]) + TOPICS_PER_BUCKET,  # every key, 24 words
            "mib": round(used / 2**20, 1), "kib_per_scope": round(used / 1024 / len(scopes), 0)}


def with_comments(events: list[dict[str, Any]], texts: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A survey-heavy stream: the bench's events with every one made a survey, once with a comment on
    each (the labelled comments, both languages, without `language`) and once without."""
    plain, commented = [], []
    for i, ev in enumerate(events):
        sv = {"event_id": f"vc-{i}", "type": "survey.submitted", "ts": ev["ts"], "survey_id": f"vs-{i}",
              "team": ev.get("team", "billing"), "channel": ev.get("channel", "chat"),
              "customer_tier": ev.get("customer_tier", "standard"), "agent": ev.get("agent") or "agent-1",
              "csat": 1 + i % 5, "nps": i % 11}
        plain.append(sv)
        commented.append({**sv, "comment": texts[i % len(texts)]})
    return plain, commented


def comments_throughput(bootstrap: str, events: list[dict[str, Any]], logs: Path, start: Callable[..., Any],
                        produce_all: Callable[..., float], watch_state: Callable[..., Any], run: str,
                        say: Callable[[str], None]) -> dict[str, Any]:
    """The KPI worker on the survey stream with and without comments, A B A B (bench/workforce.py's method)."""
    from bench.workforce import paired_rates

    texts = [r["text"] for r in load(LABELLED)]
    plain, commented = with_comments(events, texts)
    pairs = paired_rates(bootstrap, plain, commented, "vc", logs, start, produce_all, watch_state, run,
                         lambda w, wo: say(f"  comments on every survey: {w:,.0f}/s against {wo:,.0f}/s without "
                                           f"(ratio {w / wo:.2f})"))
    ratios = [p["ratio"] for p in pairs]
    return {"events": len(events), "pairs": ratios, "ratio": round(statistics.median(ratios), 3)}


def voice_bench(say: Callable[[str], None]) -> dict[str, Any]:
    """Everything but the throughput (no broker needed)."""
    held_out, dev = load(LABELLED), load(DEV)
    out = {"labelled": accuracy(held_out), "dev": {k: {x: v[x] for x in ("clear_accuracy", "neutral_as_polar")}
                                                   for k, v in accuracy(dev).items()},
           "cost": cost(held_out), "first_comment_s": first_comment_s(), "topic_memory": topic_memory(),
           "labels": list(LABELS)}
    for lang, m in out["labelled"].items():
        say(f"  voice {lang}: clear polarity {m['clear_accuracy']:.1%} of {m['clear_polar']}, neutral read as "
            f"polar {m['neutral_as_polar']:.1%} of {m['neutral']}, three-way {m['three_way_accuracy']:.1%}")
    say(f"  voice cost: {out['cost']}; first comment after a fresh start {out['first_comment_s']} s; "
        f"topic memory {out['topic_memory']}")
    return out


if __name__ == "__main__":
    res = voice_bench(print)
    print(json.dumps({k: v for k, v in res.items()}, ensure_ascii=False, indent=1))
