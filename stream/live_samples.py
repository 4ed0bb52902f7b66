"""The live-state KPIs of every scope, one sample a minute for the last hour. Pure: the caller samples.

The live state (backlog, tickets at risk, calls waiting...) has no past in the KPI buckets: it is a
level, not a count of events. The API samples it for every scope of the view, whether or not a
board shows the scope, so that a live tile has a sparkline like the others from the moment it is
opened. Each scope holds a fixed ring of `minutes` slots per KPI (8 bytes a value): 2,000 scopes of
six KPIs over 65 minutes take about 6 MB.

    s = LiveSamples(("backlog", "calls_waiting"), minutes=3)
    s.record("team:a", minute=600, values={"backlog": (12.0, 12), "calls_waiting": (3.0, 3)})
    s.record("team:a", minute=660, values={"backlog": (14.0, 14)})
    s.series("team:a", "backlog", last=660, n=3)      # [None, 12.0, 14.0]
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping

MINUTE = 60
Reading = tuple[float | None, int]


class LiveSamples:
    def __init__(self, kpis: Iterable[str], minutes: int = 65) -> None:
        self.kpis = tuple(kpis)
        self._ix = {k: i for i, k in enumerate(self.kpis)}
        self.minutes = minutes
        # scope -> (the minute each slot holds, values by slot and KPI; NaN where none)
        self._rings: dict[str, tuple[array[int], array[float]]] = {}

    def record(self, scope: str, minute: int, values: Mapping[str, Reading]) -> None:
        """The readings of `minute` (epoch seconds, a multiple of 60); a later call in the same
        minute replaces them, so the slot ends with the minute's last reading."""
        ring = self._rings.get(scope)
        if ring is None:
            ring = self._rings[scope] = (array("q", [-1] * self.minutes),
                                         array("d", [math.nan] * (self.minutes * len(self.kpis))))
        stamps, vals = ring
        slot = (minute // MINUTE) % self.minutes
        base = slot * len(self.kpis)
        if stamps[slot] != minute:
            stamps[slot] = minute
            for i in range(len(self.kpis)):
                vals[base + i] = math.nan
        for k, (v, _) in values.items():
            ix = self._ix.get(k)
            if ix is not None:
                vals[base + ix] = math.nan if v is None else v

    def series(self, scope: str, kpi: str, *, last: int, n: int) -> list[float | None]:
        """The `n` minutes up to `last`, oldest first; None where nothing was sampled."""
        ring, i = self._rings.get(scope), self._ix.get(kpi)
        first = last - (n - 1) * MINUTE
        if ring is None or i is None:
            return [None] * n
        stamps, vals = ring
        out: list[float | None] = []
        for m in range(first, last + 1, MINUTE):
            slot = (m // MINUTE) % self.minutes
            v = vals[slot * len(self.kpis) + i] if stamps[slot] == m else math.nan
            out.append(None if math.isnan(v) else v)
        return out

    def keep(self, scopes: Iterable[str]) -> None:
        """Forget the scopes that are not in `scopes` (they left the view)."""
        wanted = set(scopes)
        for s in [s for s in self._rings if s not in wanted]:
            del self._rings[s]

    def __len__(self) -> int:
        return len(self._rings)
