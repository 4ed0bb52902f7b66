"""The worker's Faust app, wired from settings: the KPI agent, the alert agent, heartbeats.

- KPI agent: the three input topics as raw bytes -> `Processor` -> state and scope topics. Messages
  are validated by our own code, so that a bad message is dead-lettered and counted instead of being
  logged and skipped by Faust's deserializer. No Faust tables: the state is kept by `Processor` and
  persisted per micro-batch to the state topic, which is also what the API reads
  (docs/design.md, "State and recovery").
- Alert agent: subscribes to the alert-state topic for the group assignment only; `AlertRunner`
  evaluates the scopes of the partitions assigned here (alerts/runner.py).

`SQM_WORKER_ROLE` picks what a process runs: `all` (both, one consumer group), or `kpis` and
`alerts` (one each, in two consumer groups) so that alert evaluation does not take the KPI fold's
CPU. Run either `all` everywhere or the two split roles (`all` and `kpis` would share a group with
different subscriptions, which is not tested).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import faust
import psutil

from alerts.feed import RulesFeed
from alerts.runner import AlertRunner
from edge.store import StateStore
from edge.transport import app_class
from services import health
from services.config import Settings
from stream.processor import BatchFailed, Message, Processor
from stream.records import Heartbeat
from stream.state import PartitionState

HEARTBEAT_S = 5.0
STOP_GRACE_S = 5.0  # a stopping worker waits this long for the batch in hand to be written
log = logging.getLogger(__name__)


@dataclass
class Parts:
    """The pieces a worker runs; `create_app` wires them into a Faust app."""

    settings: Settings
    store: StateStore
    processor: Processor
    rules: RulesFeed
    alerting: AlertRunner
    guard: BatchGuard = field(default_factory=lambda: BatchGuard(_die))  # the KPI batch in hand

    @property
    def kinds(self) -> dict[str, str]:
        """topic name -> kind (tickets, calls, surveys)"""
        return {name: kind for kind, name in self.settings.source_topics.items()}


def build_parts(settings: Settings) -> Parts:
    store = StateStore(settings.kafka, settings.state_topic, settings.deadletter_topic,
                       settings.source_topics, scopes_topic=settings.scopes_topic,
                       scope_partitions=settings.partitions)
    rules = RulesFeed(settings.kafka, settings.rules_topic)
    alerting = AlertRunner(kafka=settings.kafka, scopes_topic=settings.scopes_topic,
                           alert_state_topic=settings.alert_state_topic, alerts_topic=settings.alerts_topic,
                           partitions=settings.partitions, bucket_s=settings.bucket_s, rules=rules,
                           tick_s=settings.alert_tick_s, full_every_s=settings.alert_full_eval_s,
                           coalesce_s=settings.alert_coalesce_s, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                           census_every_s=settings.alert_census_s, staffing=settings.staffing_config)
    processor = Processor(store, settings.kpi_config, settings.bucket_s, settings.ticket_horizon_s,
                          settings.analyser)
    return Parts(settings, store, processor, rules, alerting)


def faust_app(settings: Settings) -> faust.App:
    rebalance = settings.effective_rebalance_timeout
    group = "alerts" if settings.worker_role == "alerts" else "worker"
    return app_class(settings.fetch_max_wait_ms)(
        settings.group_id or f"{settings.topic_prefix}{group}",
        broker=settings.kafka.faust_broker,
        broker_credentials=settings.kafka.faust_credentials(),
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_allow_declare=False,  # topics are created by services.topics with explicit configs
        web_enabled=False,
        web_tables_enabled=False,
        broker_rebalance_timeout=rebalance,
        broker_session_timeout=max(10.0, rebalance * 2),
        broker_heartbeat_interval=min(3.0, rebalance / 2),
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
    )


def create_app(settings: Settings) -> faust.App:
    app = faust_app(settings)
    parts = build_parts(settings)
    role = settings.worker_role
    kpi_role, alert_role = role in ("all", "kpis"), role in ("all", "alerts")
    _lifecycle(app, parts, alert_role)
    if kpi_role:
        _kpi_agent(app, parts)
    if alert_role:
        alert_state = app.topic(settings.alert_state_topic, value_serializer="raw", key_serializer="raw")
        app.agent(alert_state, name="alerts")(_hold_assignment)
    _heartbeat(app, parts)
    _health(app, parts)
    return app


def _lifecycle(app: faust.App, parts: Parts, alert_role: bool) -> None:
    settings = parts.settings

    def owned_scope_partitions() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.alert_state_topic}

    @app.service
    class _Store(faust.Service):
        async def on_start(self) -> None:
            # the comments' segmenter (jieba's dictionary, ~1 s) loads before the first batch, not in it
            await asyncio.to_thread(parts.processor.analyser.warm)
            await parts.store.start()
            if alert_role:
                parts.rules.use(parts.store.producer)
                await parts.rules.start()
                parts.alerting.use(parts.store.producer, owned_scope_partitions)
                await parts.alerting.start()

        async def on_stop(self) -> None:
            await parts.guard.settle()  # before the store closes under the batch in hand
            if alert_role:
                await parts.alerting.stop()
                await parts.rules.stop()
            await parts.store.stop()

    kinds = parts.kinds

    async def _revoked(app_: Any, revoked: set[Any], **_: Any) -> None:
        parts.processor.forget({tp.partition for tp in revoked if tp.topic in kinds})
        parts.alerting.forget({tp.partition for tp in revoked if tp.topic == settings.alert_state_topic})

    app.on_partitions_revoked.connect(_revoked)  # type: ignore[arg-type]


def _kpi_agent(app: faust.App, parts: Parts) -> None:
    settings, kinds, processor = parts.settings, parts.kinds, parts.processor
    topics = app.topic(*settings.source_topics.values(), value_serializer="raw", key_serializer="raw")

    async def kpis(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            batch = [Message(kinds[e.message.topic], e.message.partition, e.message.offset,
                             e.message.key, e.message.value) for e in events]
            await parts.guard.run(processor.process(batch))

    app.agent(topics, name="kpis")(kpis)


class BatchGuard:
    """Runs the KPI batch step so that its batch is acknowledged only with its state on the broker.

    Faust's `take_events` acknowledges the batch when the agent's body returns *or raises*, and the
    consumer commits on stop. Faust stops the app's services (the state store among them) before its
    agents, and cancels the agent last. So a step that gives up (BatchFailed), and a stop (SIGTERM, a
    rolling update) that finds the step still writing after `grace_s`, end the process through `die`
    before any acknowledgement. A step that finishes within the grace (the usual case: milliseconds)
    leaves the stop graceful.
    """

    def __init__(self, die: Callable[[str], None], grace_s: float = STOP_GRACE_S) -> None:
        self.die = die
        self.grace_s = grace_s
        self.task: asyncio.Future[None] | None = None

    async def run(self, step: Coroutine[Any, Any, None]) -> None:
        self.task = task = asyncio.ensure_future(step)
        try:
            await asyncio.shield(task)
        except BatchFailed:
            self.die("the KPI batch step keeps failing")
        except asyncio.CancelledError:
            await self.settle()
            raise

    async def settle(self) -> None:
        """On stop: wait for the batch in hand, if any; end the process if its state is not written."""
        task = self.task
        if task is None or (task.done() and not task.cancelled() and task.exception() is None):
            return
        try:
            done, _ = await asyncio.wait({task}, timeout=self.grace_s)
        except BaseException:  # cancelled again while waiting
            done = set()
        if task not in done or task.cancelled() or task.exception() is not None:
            self.die(f"stopping with a batch whose state is not on the broker after {self.grace_s:.0f} s")


def _die(why: str) -> None:
    """Stop at once, without running Faust's shutdown (which would acknowledge and commit the batch
    in hand). The offsets stay uncommitted; the supervisor restarts the worker, which reloads its
    state and processes the batch again."""
    log.critical("%s: stopping the worker without committing the batch", why, exc_info=True)
    logging.shutdown()
    os._exit(70)


async def _hold_assignment(stream: Any) -> None:
    """Subscribed for the assignment only: partition q assigned here = this worker evaluates the
    scopes of partition q (AlertRunner). The records are our own writes, already applied."""
    async for _ in stream.events():
        pass


def _heartbeat(app: faust.App, parts: Parts) -> None:
    settings, kinds, processor = parts.settings, parts.kinds, parts.processor
    proc = psutil.Process(os.getpid())

    def source_lag(tps: list[Any]) -> int:
        """Messages on the assigned source partitions not yet processed (high watermark of the last
        fetch minus the last offset applied; 0 for a partition not fetched yet)."""
        lag = 0
        for tp in tps:
            hw = app.consumer.highwater(tp)
            st = processor.states.get(tp.partition)
            counters = st.counters.get(kinds[tp.topic]) if st is not None else None
            if hw is not None and counters is not None:
                lag += max(0, hw - 1 - counters.wm)
        return lag

    @app.timer(HEARTBEAT_S)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        tps = [tp for tp in app.consumer.assignment() if tp.topic in kinds]
        evaluator = parts.alerting.evaluator
        await parts.store.write_heartbeat(settings.worker_id, Heartbeat(
            ts=time.time(), pid=os.getpid(), role=settings.worker_role,
            assigned=tuple(sorted({tp.partition for tp in tps})), processed=processor.processed,
            rss=proc.memory_info().rss, lag=source_lag(tps), rules=len(parts.rules.rules),
            alert_transitions=parts.alerting.transitions, alerts_firing=evaluator.active(),
            alert_partitions=tuple(sorted(evaluator.parts))))


def _health(app: faust.App, parts: Parts) -> None:
    """Probes on SQM_HEALTH_PORT (services/health.py): live while this loop beats; ready once the group
    has assigned this worker its partitions and their state is loaded (`health.worker_readiness`).

    The state of newly assigned source partitions is loaded as soon as the rebalance is over, not at
    their first message, so that "ready" needs no traffic and the first batch after a rebalance does
    not wait for it. A load is kept only if nothing moved meanwhile (same group generation, no
    rebalance under way, the partition still ours) and the KPI agent did not load it first: two
    loads of one partition with no batch between them read the same records."""
    settings, processor, kinds = parts.settings, parts.processor, parts.kinds
    kpi_role, alert_role = settings.worker_role in ("all", "kpis"), settings.worker_role in ("all", "alerts")
    probes, joined, started, tasks = health.Health(), [False], [False], set[asyncio.Task[None]]()

    def owned(topics: Any) -> frozenset[int]:
        return frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic in topics)

    def state() -> health.WorkerState:
        jobs: dict[str, tuple[Any, frozenset[int]]] = {}
        if kpi_role:
            jobs["kpis"] = (kinds, frozenset(processor.states))
        if alert_role:
            jobs["alerts"] = ({settings.alert_state_topic}, frozenset(parts.alerting.evaluator.parts))
        return health.WorkerState(joined[0], app.rebalancing, {job: owned(t) for job, (t, _) in jobs.items()},
                                  {job: loaded for job, (_, loaded) in jobs.items()},
                                  parts.rules.ready.is_set() if alert_role else None)

    async def preload(generation: int) -> None:
        # after Faust's recovery (the partitions stay paused until it ends) and the store's start
        while app.rebalancing or not started[0]:
            await asyncio.sleep(0.05)
            if app.consumer_generation_id != generation:
                return  # a later assignment started a load of its own
        for p in sorted(owned(kinds) - processor.states.keys()):
            st = PartitionState(p, processor.cfg, processor.bucket_s, processor.ticket_horizon_s, processor.analyser)
            st.load(await parts.store.read_partition(p))
            if app.consumer_generation_id != generation or app.rebalancing or p not in owned(kinds):
                return
            processor.states.setdefault(p, st)

    async def _assigned(app_: Any, assigned: set[Any], **_: Any) -> None:
        joined[0] = True
        if kpi_role:
            task = asyncio.ensure_future(preload(app.consumer_generation_id))
            tasks.add(task)
            task.add_done_callback(_loaded)

    def _loaded(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the KPI agent loads it at its first batch
            log.warning("loading the state of the assigned partitions failed: %r", task.exception())

    app.on_partitions_assigned.connect(_assigned)  # type: ignore[arg-type]
    probes.check = lambda: health.worker_readiness(state())

    @app.timer(health.BEAT_S)  # type: ignore[untyped-decorator]
    async def health_beat() -> None:
        probes.beat()

    servers: list[health.HealthServer] = []

    @app.service
    class _Probes(faust.Service):  # registered after _Store, so started after it
        async def on_start(self) -> None:
            started[0] = True
            probes.beat()  # the first beat: the group join before this may have taken longer than the limit
            if settings.health_port is not None:
                servers.append(health.HealthServer(settings.health_port, probes).start())

        async def on_stop(self) -> None:
            for server in servers:
                server.close()
