"""The alert engine inside a worker: scope-topic records in, transitions to the alerts topic out (I/O edge).

`ScopeEvaluator` does the work; this class loads a partition when the worker gets it, writes the
transitions (alerts topic, key = alert id, so one alert's transitions stay in order) and the changed
alert state (scope topic), and acknowledges the input only after both are on the broker. A replay
after a crash repeats transitions with the same event ids; the notifier drops them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

import orjson
from aiokafka import AIOKafkaProducer

from alerts.engine import Transition
from alerts.evaluator import ScopeEvaluator, Touched
from alerts.feed import RulesFeed
from stream.store import read_to_sentinel

log = logging.getLogger(__name__)


class AlertRunner:
    def __init__(self, *, bootstrap: str, scopes_topic: str, alerts_topic: str, partitions: int, bucket_s: int,
                 rules: RulesFeed, producer: AIOKafkaProducer | None = None, coalesce_s: float = 0.5) -> None:
        self.bootstrap = bootstrap
        self.scopes_topic = scopes_topic
        self.alerts_topic = alerts_topic
        self.rules = rules
        self.evaluator = ScopeEvaluator(bucket_s, partitions)
        self._producer = producer
        self._lock = asyncio.Lock()
        self._last_full = 0.0
        self._last_eval = 0.0
        self._touched: Touched = {}
        self.coalesce_s = coalesce_s
        self.transitions = 0

    def use_producer(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "AlertRunner needs a started producer"
        return self._producer

    async def _ensure(self, q: int) -> None:
        if not self.evaluator.holds(q):
            self.evaluator.load(q, await read_to_sentinel(self.producer, self.bootstrap, self.scopes_topic, q))

    async def process(self, messages: Sequence[tuple[int, bytes | None, bytes | None]],
                      now: float | None = None) -> None:
        """Apply a batch; evaluate the scopes it touched, at most every `coalesce_s` (the scopes
        touched in between wait for the next batch or tick: a busy scope is evaluated twice a
        second, not once per micro-batch)."""
        async with self._lock:
            for q, k, v in messages:
                await self._ensure(q)
                self._touched.setdefault(q, set()).update(self.evaluator.apply(q, k, v))
            now = time.time() if now is None else now
            if now - self._last_eval >= self.coalesce_s:
                await self._evaluate(now, full=False)

    async def tick(self, assigned: Iterable[int], *, full_every_s: float, now: float | None = None) -> None:
        """Time-driven evaluation: touched scopes not evaluated yet, `for` running out, and every
        `full_every_s` everything (windows slide, tickets become at risk with the clock)."""
        async with self._lock:
            for q in assigned:
                await self._ensure(q)
            now = time.time() if now is None else now
            full = now - self._last_full >= full_every_s
            if full:
                self._last_full = now
            await self._evaluate(now, full=full)

    async def _evaluate(self, now: float, *, full: bool) -> None:
        only: Touched | None = None
        if not full:
            only = {q: self._touched.get(q, set()) for q in self.evaluator.parts}
        self._touched = {}
        self._last_eval = now
        await self._publish(self.evaluator.evaluate(self.rules.rules, now=now, only=only))

    def forget(self, qs: Iterable[int]) -> None:
        self.evaluator.forget(qs)

    async def _publish(self, transitions: list[Transition]) -> None:
        records = self.evaluator.drain()
        if not transitions and not records:
            return
        delay = 0.2
        while True:  # the input is acknowledged after this returns: never give up
            try:
                send = self.producer.send
                futs = [await send(self.alerts_topic, key=t.alert_id.encode(), value=orjson.dumps(t.to_json()))
                        for t in transitions]
                futs += [await send(self.scopes_topic, key=k, value=v, partition=q) for q, (k, v) in records]
                await asyncio.gather(*futs)
                break
            except Exception:
                log.exception("alert publish failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.transitions += len(transitions)
        for t in transitions:
            level = logging.DEBUG if t.kind in ("pending", "cancelled") else logging.INFO
            log.log(level, "alert %s %s %s %s value=%s", t.rule_id, t.scope, t.kind, t.severity, t.value)
