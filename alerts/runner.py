"""The alert engine inside a worker: scope-topic records in, transitions to the alerts topic out (I/O edge).

`ScopeEvaluator` does the work. This class decides which scope partitions this worker evaluates,
feeds them to the evaluator and publishes what it returns:

- Ownership: partition q of the alert-state topic is assigned by the worker group (a Faust agent
  on that topic), and whoever owns it evaluates the scopes of partition q. The alert state of each
  (rule, scope) lives there, so it moves with the ownership and survives a restart.
- Input: the scope topic is read with a plain consumer, only the owned partitions. Each one is
  loaded from the beginning when it is gained (up to a sentinel), then followed from that point.
  The scope topic carries about three records per input event; read through a Faust agent, each
  cost as much as the event itself and the worker fell behind at 2,000 events/s (bench/HISTORY.md).
  No offsets are committed: a gained partition is always reloaded.
- Output: transitions go to the alerts topic (key = alert id, so one alert's transitions stay in
  order), changed alert state to the alert-state topic. A replay after a crash repeats transitions
  with the same event ids; the notifier drops them.

Evaluation: the scopes touched by new records within `coalesce_s` of their arrival (a busy scope is
evaluated at most that often, not once per record); every `tick_s` the alerts that are pending or
firing (`for` runs out with the clock); every `full_every_s` everything (windows slide, tickets
become at risk with the clock). Each evaluation also re-checks the pending and firing alerts.
Nothing is evaluated before the rule feed has caught up: with an empty rule set the evaluator
would drop the alert state it just loaded.

Besides transitions, the alerts topic carries the live value of each pending or firing alert when it
moved (at most every 10 s; for repeat notifications) and, after the first evaluation of a partition
that was loaded and then every `census_every_s`, the census of the alerts that partition holds: the
notifier ends every alert of the database that the engine does not hold (a new embedded broker
starts with no alert state; a rule deleted while no worker ran), so no alert stays "firing" in the
history that nothing will ever resolve.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alerts.engine import Transition
from alerts.evaluator import Census, LiveValue, ScopeEvaluator, Touched
from alerts.feed import RulesFeed
from edge.background import BackgroundLoop
from edge.kafka import KafkaClientConfig
from edge.store import read_to_sentinel, read_to_sentinel_at
from stream.view import StaffingConfig

log = logging.getLogger(__name__)


class AlertRunner(BackgroundLoop):
    name = "alert runner"

    def __init__(self, *, kafka: KafkaClientConfig, scopes_topic: str, alert_state_topic: str, alerts_topic: str,
                 partitions: int, bucket_s: int, rules: RulesFeed, tick_s: float = 0.5, full_every_s: float = 10.0,
                 coalesce_s: float = 0.1, fetch_max_wait_ms: int = 100, census_every_s: float = 60.0,
                 staffing: StaffingConfig | None = None) -> None:
        self.kafka = kafka
        self.scopes_topic = scopes_topic
        self.alert_state_topic = alert_state_topic
        self.alerts_topic = alerts_topic
        self.rules = rules
        self.evaluator = ScopeEvaluator(bucket_s, partitions, staffing)
        self.tick_s = tick_s
        self.full_every_s = full_every_s
        self.coalesce_s = coalesce_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.census_every_s = census_every_s
        self.transitions = 0
        self._census_due: set[int] = set()  # loaded partitions whose census goes out after their first evaluation
        self._last_census = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._owned: Callable[[], set[int]] = set
        self._touched: Touched = {}
        self._last_eval = 0.0
        self._last_full = 0.0

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("AlertRunner.use() was not called before start()")
        return self._producer

    def use(self, producer: AIOKafkaProducer, owned: Callable[[], set[int]]) -> None:
        """Before `start`: the producer to publish with; `owned()` tells which partitions this
        worker holds now."""
        self._producer = producer
        self._owned = owned

    def forget(self, qs: Iterable[int]) -> None:
        """Partitions revoked: stop evaluating them at once (the next owner reloads them)."""
        self.evaluator.forget(qs)

    def on_failure(self) -> None:
        self.evaluator.forget(list(self.evaluator.parts))  # reloaded from the topics on the next round

    async def run_once(self) -> None:
        consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), group_id=None, enable_auto_commit=False,
                                    client_id="sqm-alert-runner", fetch_max_wait_ms=self.fetch_max_wait_ms,
                                    max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            following: set[int] = set()
            while True:
                want = self._owned()
                if want != following or any(not self.evaluator.holds(q) for q in want):
                    await self._reassign(consumer, following, want)
                    following = want
                if following:
                    batches = await consumer.getmany(timeout_ms=int(self.coalesce_s * 1000), max_records=20000)
                else:
                    batches = {}
                    await asyncio.sleep(self.tick_s / 2)
                for tp, msgs in batches.items():
                    q = tp.partition
                    if not self.evaluator.holds(q):  # revoked while fetching
                        continue
                    touched = self._touched.setdefault(q, set())
                    for m in msgs:
                        touched.update(self.evaluator.apply(q, m.key, m.value))
                now = time.time()
                since = now - self._last_eval
                due = since >= self.tick_s or (since >= self.coalesce_s and any(self._touched.values()))
                if due and self.rules.ready.is_set():
                    await self._evaluate(now)
        finally:
            await consumer.stop()

    async def _reassign(self, consumer: AIOKafkaConsumer, following: set[int], want: set[int]) -> None:
        """Follow exactly `want`: load the partitions gained, keep the position of the others."""
        keep = {q for q in following & want if self.evaluator.holds(q)}
        positions = {q: await consumer.position(TopicPartition(self.scopes_topic, q)) for q in keep}
        self.evaluator.forget(set(self.evaluator.parts) - keep)
        for q in sorted(want - keep):
            records, at = await read_to_sentinel_at(self.producer, self.kafka, self.scopes_topic, q)
            # the alert state is read after the KPI records: it overrides any left on the scope
            # topic by an older version, which kept the two together
            records += await read_to_sentinel(self.producer, self.kafka, self.alert_state_topic, q)
            self.evaluator.load(q, records)
            self._touched.pop(q, None)
            self._census_due.add(q)
            positions[q] = at
        if not want:
            consumer.unsubscribe()
            return
        consumer.assign([TopicPartition(self.scopes_topic, q) for q in sorted(want)])
        for q, offset in positions.items():
            consumer.seek(TopicPartition(self.scopes_topic, q), offset)
        log.info("alert evaluation: scope partitions %s", sorted(want))

    async def _evaluate(self, now: float) -> None:
        full = now - self._last_full >= self.full_every_s
        only: Touched | None = None
        if full:
            self._last_full = now
        else:
            only = {q: self._touched.get(q, set()) for q in self.evaluator.parts}
        self._touched = {}
        self._last_eval = now
        transitions = self.evaluator.evaluate(self.rules.rules, now=now, only=only)
        if now - self._last_census >= self.census_every_s:
            self._last_census = now
            self._census_due.update(self.evaluator.parts)
        held = [q for q in sorted(self._census_due) if self.evaluator.holds(q)]
        self._census_due.clear()
        await self._publish(transitions, self.evaluator.live_values(),
                            [self.evaluator.census(q, now=now, transitions=transitions) for q in held])

    async def _publish(self, transitions: list[Transition], live: list[LiveValue], census: list[Census]) -> None:
        records = self.evaluator.drain()
        if not transitions and not records and not live and not census:
            return
        delay = 0.2
        while True:  # the state is in memory only until this returns: never give up
            try:
                send = self.producer.send
                futs = [await send(self.alerts_topic, key=t.alert_id.encode(), value=orjson.dumps(t.to_json()))
                        for t in transitions]
                futs += [await send(self.alerts_topic, key=v.alert_id.encode(), value=orjson.dumps(v.to_json()))
                         for v in live]
                futs += [await send(self.alerts_topic, key=f"census/{c.partition}".encode(),
                                    value=orjson.dumps(c.to_json())) for c in census]
                futs += [await send(self.alert_state_topic, key=k, value=v, partition=q) for q, (k, v) in records]
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
