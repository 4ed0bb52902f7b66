"""The notifier process: `python -m services.notifier` (alerts topic -> history + outbox -> targets).

Reads the alerts topic in the consumer group `<prefix>notifier`, records each batch in the database
(`Notifier.ingest`) and commits the Kafka offsets only after that transaction: a crash replays the
batch and the history skips what it has. Delivery runs from the outbox as soon as a batch is in,
and otherwise every 0.5 s; repeats and escalations are scheduled every second, and alerts that ended
longer ago than SQM_ALERT_RETENTION_DAYS are deleted every hour. Several notifiers can
run: the topic's partitions are split between them and outbox rows are leased.

It never exits because the database or the broker is away: at start (migrations, topics) and in
each loop, a failure is logged once per outage (`Outage`), waited out with backoff (0.5 s doubling
to 5 s) and tried again. A batch the database did not take is read again from the same offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError as AIOKafkaError
from kafka.errors import KafkaError

from alerts.delivery import one_line
from alerts.notifier import Notifier
from alerts.routing import load_notify_file
from db.engine import make_engine, unavailable, upgrade
from services import health
from services.config import Settings
from services.topics import TopicLayoutError, ensure_topics

log = logging.getLogger("sqm.notifier")
PURGE_EVERY_S = 3600.0
PURGE_BATCH = 2000


class Outage:
    """One dependency (the database, the broker) as the loops that use it see it: the first failure
    of an outage is logged, the rest of it is quiet, the recovery is logged with its length. An error
    that is not `expected` of an outage (a bug) is logged with its traceback, once per streak.
    `failed` returns how long the failing loop waits: 0.5 s, 1 s, 2 s ... up to `cap_s`."""

    def __init__(self, what: str, expected: Callable[[BaseException], bool], first_s: float = 0.5,
                 cap_s: float = 5.0) -> None:
        self.what, self.expected, self.first_s, self.cap_s = what, expected, first_s, cap_s
        self.failing: dict[str, int] = {}  # loop -> consecutive failures
        self.down: set[str] = set()  # loops failing because the dependency is away
        self.since: float | None = None

    def failed(self, loop: str, error: BaseException) -> float:
        n = self.failing[loop] = self.failing.get(loop, 0) + 1
        if not self.expected(error):
            if n == 1:
                log.error("%s failed; retrying with backoff", loop, exc_info=error)
        else:
            self.down.add(loop)
            if self.since is None:
                self.since = time.monotonic()
                log.warning("%s is unavailable (%s: %s); retrying until it is back", self.what, loop,
                            one_line(f"{type(error).__name__}: {error}", 300))
        return float(min(self.cap_s, self.first_s * 2.0 ** (n - 1)))

    def ok(self, loop: str) -> None:
        self.failing.pop(loop, None)
        self.down.discard(loop)
        if self.since is not None and not self.down:
            log.warning("%s is back after %.0f s", self.what, time.monotonic() - self.since)
            self.since = None


def broker_away(error: BaseException) -> bool:
    return isinstance(error, (AIOKafkaError, KafkaError, OSError))


class KafkaLogThrottle(logging.Filter):
    """Lets each message of the Kafka clients through at most once a minute: while the broker is
    away they report every failed connection, several times a second."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("aiokafka", "kafka")):
            return True
        key, now = (record.name, str(record.msg)), time.monotonic()
        if now - self.last.get(key, -self.every_s) < self.every_s:
            return False
        self.last[key] = now
        return True


async def pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def until_done(stop: asyncio.Event, outage: Outage, loop: str, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work` until it succeeds (True) or the process stops (False). Topics with the wrong
    partition counts (TopicLayoutError) do not heal by waiting: that error ends the process."""
    while not stop.is_set():
        try:
            await work()
            outage.ok(loop)
            return True
        except TopicLayoutError:
            raise
        except Exception as exc:
            await pause(stop, outage.failed(loop, exc))
    return False


def build(settings: Settings) -> Notifier:
    """The notifier on a database engine (nothing connects here)."""
    config = load_notify_file(settings.notify_file, "var/alerts.log")
    return Notifier(make_engine(settings.database_url), config, base_url=settings.base_url,
                    lease_s=settings.delivery_lease_s, backoff_max_s=settings.delivery_backoff_max_s,
                    timeout_s=settings.delivery_timeout_s)


def consumer_of(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(settings.alerts_topic, **settings.kafka.aiokafka(),
                            group_id=f"{settings.topic_prefix}notifier", enable_auto_commit=False,
                            auto_offset_reset="earliest", client_id="sqm-notifier",
                            fetch_max_wait_ms=settings.fetch_max_wait_ms,
                            rebalance_timeout_ms=int(settings.effective_rebalance_timeout * 1000),
                            session_timeout_ms=int(max(10.0, settings.effective_rebalance_timeout * 2) * 1000),
                            heartbeat_interval_ms=int(min(3.0, settings.effective_rebalance_timeout / 2) * 1000))


async def consume(settings: Settings, notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event,
                  db: Outage, broker: Outage) -> None:
    """Follow the alerts topic; a consumer that fails (the broker away) is replaced after a pause."""
    while not stop.is_set():
        consumer = consumer_of(settings)
        try:
            await consumer.start()
            await follow(consumer, notifier, wake, stop, db, broker)
            broker.ok("consume")
        except Exception as exc:
            wait = broker.failed("consume", exc)
        else:
            wait = 0.0
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        await pause(stop, wait)


async def follow(consumer: AIOKafkaConsumer, notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event,
                 db: Outage, broker: Outage) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500, max_records=500)
        broker.ok("consume")
        if not batch:
            continue
        values = [m.value for msgs in batch.values() for m in msgs if m.value]
        try:
            new = await asyncio.to_thread(notifier.ingest, values) if values else 0
        except Exception as exc:  # the database is away: read the batch again once it is back
            for tp, msgs in batch.items():
                with contextlib.suppress(Exception):  # revoked meanwhile: its new owner reads it
                    consumer.seek(tp, msgs[0].offset)
            await pause(stop, db.failed("recording transitions", exc))
            continue
        db.ok("recording transitions")
        if new:
            log.info("recorded %d of %d messages (transitions, live values, census)", new, len(values))
        if values:
            wake.set()
        try:
            await consumer.commit()  # only now: the batch is in the database
        except Exception as exc:  # a rebalance or the broker away: the batch is read again, and skipped
            log.warning("offsets not committed (the batch will be read again): %s", one_line(exc, 300))


async def deliver(notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event, db: Outage) -> None:
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            wait = 0.5
            try:
                while await notifier.deliver(client, time.time()):
                    pass
                db.ok("delivery")
            except Exception as exc:
                wait = db.failed("delivery", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)
            wake.clear()


async def schedule(notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event, retention_s: float,
                   db: Outage) -> None:
    last_purge = 0.0
    while not stop.is_set():
        wait = 1.0
        try:
            if await asyncio.to_thread(notifier.schedule, time.time()):
                wake.set()
            if time.time() - last_purge >= PURGE_EVERY_S:
                purged, n, at = 0, PURGE_BATCH, time.time()
                while n == PURGE_BATCH:
                    n = await asyncio.to_thread(notifier.purge, at, retention_s, PURGE_BATCH)
                    purged += n
                last_purge = at
                if purged:
                    log.info("retention: deleted %d alerts that ended over %.0f days ago", purged, retention_s / 86400)
            db.ok("scheduling")
        except Exception as exc:
            wait = max(wait, db.failed("scheduling", exc))
        await pause(stop, wait)


async def start(settings: Settings, notifier: Notifier, stop: asyncio.Event, db: Outage, broker: Outage) -> bool:
    """Migrations and topics, each retried until it succeeds; False if stopped meanwhile."""
    if not await until_done(stop, db, "migrations", lambda: asyncio.to_thread(upgrade, notifier.engine)):
        return False
    if not await until_done(stop, broker, "topics", lambda: asyncio.to_thread(ensure_topics, settings, 5.0)):
        return False
    with contextlib.suppress(Exception):  # a courtesy: the database may be gone again already
        for name, n in (await asyncio.to_thread(notifier.held)).items():
            log.warning("%d notifications wait for target %r, which is not in the notify file: they are held and "
                        "delivered if it comes back (docs/operations.md)", n, name)
    return True


async def run(settings: Settings) -> None:
    notifier = build(settings)
    stop, wake = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    db, broker = Outage("the database", unavailable), Outage("the broker", broker_away)
    probes = health.watch(settings.health_port)  # live: this loop beats; ready: once started, while both answer
    log.info("notifier %s: targets %s", notifier.owner, [t.name for t in notifier.config.targets])
    try:
        if not await start(settings, notifier, stop, db, broker):
            return
        probes.ready_when(lambda: health.ready_unless(database_down=bool(db.down), broker_down=bool(broker.down)))
        tasks = [asyncio.create_task(c) for c in (consume(settings, notifier, wake, stop, db, broker),
                                                 deliver(notifier, wake, stop, db),
                                                 schedule(notifier, wake, stop, settings.alert_retention_days * 86400,
                                                          db))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            if t.exception():
                raise t.exception()  # type: ignore[misc]
    finally:
        notifier.engine.dispose()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s notifier %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.addFilter(KafkaLogThrottle())
    try:
        asyncio.run(run(settings))
    except TopicLayoutError as exc:
        raise SystemExit(f"notifier: {exc}") from None


if __name__ == "__main__":
    main()
