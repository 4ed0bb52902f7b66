"""Fold a file of past contract events into history rows, through the same pure folds as the workers.

The live windows end at 24 h, so history older than the running system can only come from a file
of the events of that time (JSON lines, any age, any order). Each line is validated like a message
on the input topics; duplicates (same `event_id`) count once; events from `until` on are skipped,
because the live history writer counts those. Events older than the minute retention go straight
to hour rows.

    rows, stats = fold_lines(lines, now=time.time(), cfg=KpiConfig(), minute_cutoff=..., until=...)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from history.series import HOUR, MINUTE, floor
from stream.clock import utc
from stream.events import Rejected, decode
from stream.folds import Acc, KpiConfig, contribution
from stream.scopes import scopes_of

Row = tuple[str, str, int, Acc]


@dataclass
class BackfillStats:
    lines: int = 0
    events: int = 0
    duplicates: int = 0
    live: int = 0  # at or after `until`: the live history has them
    rejected: Counter[str] = field(default_factory=Counter)


def fold_lines(lines: Iterable[bytes], *, now: float, cfg: KpiConfig, minute_cutoff: int,
               until: float | None) -> tuple[list[Row], BackfillStats]:
    stats = BackfillStats()
    seen: set[str] = set()
    accs: dict[tuple[str, str, int], Acc] = defaultdict(Acc)
    now_dt = utc(now)
    for raw in lines:
        if not raw.strip():
            continue
        stats.lines += 1
        ev = decode(raw.strip(), now=now_dt)
        if isinstance(ev, Rejected):
            stats.rejected[ev.reason] += 1
            continue
        if ev.event_id in seen:
            stats.duplicates += 1
            continue
        seen.add(ev.event_id)
        ts = ev.ts.timestamp()
        if until is not None and ts >= until:
            stats.live += 1
            continue
        stats.events += 1
        res, start = ("m", floor(ts, MINUTE)) if ts >= minute_cutoff else ("h", floor(ts, HOUR))
        c = contribution(ev, cfg)
        for scope in scopes_of(ev):
            accs[(res, scope, start)].add(c)
    return [(r, s, t, a) for (r, s, t), a in sorted(accs.items())], stats
