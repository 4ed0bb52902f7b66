"""Readings of the view taken on a clock, in the API's event loop (the view is not shared with threads):

- `LiveSampler`: the live-state KPIs of every scope, every `every_s`, into `LiveSamples` (the
  board's sparklines of backlog, calls waiting...; sampled whether or not a board is open);
- `FollowUpChecker`: the rule's KPI of each acknowledged alert 15 and 30 minutes after its
  acknowledgement, written to the alert's history (PDCA's check; `alerts/followup.py`). Several API
  replicas may run it: a check is recorded once (its event id is unique).
"""

from __future__ import annotations

import asyncio
import logging
import time

from alerts.followup import CHECKS_S, due_checks
from alerts.history import AlertRepository
from api.alert_views import live_reading
from edge.background import BackgroundLoop
from stream.clock import aware, utc
from stream.kpis import LIVE_KPIS
from stream.live_samples import MINUTE, LiveSamples
from stream.view import View

log = logging.getLogger(__name__)
SCOPES_PER_STEP = 500  # scopes sampled before yielding the loop to requests


class LiveSampler(BackgroundLoop):
    name = "live sampler"

    def __init__(self, view: View, every_s: float = 15.0, minutes: int = 65) -> None:
        self.view = view
        self.every_s = every_s
        self.samples = LiveSamples(LIVE_KPIS, minutes)

    async def sample(self, now: float) -> int:
        """One round over every scope; returns the scopes sampled."""
        minute = int(now // MINUTE) * MINUTE
        scopes = self.view.scopes(now=now)
        for i, scope in enumerate(scopes):
            self.samples.record(scope, minute, self.view.live_kpis(scope, now=now))
            if i % SCOPES_PER_STEP == SCOPES_PER_STEP - 1:
                await asyncio.sleep(0)  # a few thousand scopes: let requests in between
        self.samples.keep(scopes)
        return len(scopes)

    async def run_once(self) -> None:
        while True:
            await self.sample(time.time())
            await asyncio.sleep(self.every_s)


class FollowUpChecker(BackgroundLoop):
    name = "follow-up checks"
    retry_s = 30.0

    def __init__(self, view: View, history: AlertRepository, every_s: float = 20.0) -> None:
        self.view = view
        self.history = history
        self.every_s = every_s

    async def check(self, now: float) -> int:
        """Record the checks that are due; returns how many were recorded."""
        recorded = 0
        for a, done in await asyncio.to_thread(self.history.due_checks, utc(now), float(max(CHECKS_S))):
            assert a.acked_at is not None
            for after_s in due_checks(now - aware(a.acked_at).timestamp(), done):
                reading = live_reading(self.view, a.kpi, a.scope, a.window, now=now)
                recorded += await asyncio.to_thread(self.history.record_check, a.id, after_s=after_s,
                                                    reading=reading, now=utc(now))
        return recorded

    async def run_once(self) -> None:
        while True:
            if n := await self.check(time.time()):
                log.info("recorded %d follow-up checks of acknowledged alerts", n)
            await asyncio.sleep(self.every_s)
