"""The notifier process: `python -m services.notifier` (alerts topic -> history + outbox -> targets).

Reads the alerts topic in the consumer group `<prefix>notifier`, records each batch in the database
(`Notifier.ingest`) and commits the Kafka offsets only after that transaction: a crash replays the
batch and the history skips what it has. Delivery runs from the outbox as soon as a batch is in,
and otherwise every 0.5 s; repeats and escalations are scheduled every second, and alerts that ended
longer ago than SQM_ALERT_RETENTION_DAYS are deleted every hour. Several notifiers can
run: the topic's partitions are split between them and outbox rows are leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from alerts.notifier import Notifier
from alerts.routing import load_notify_file
from db.engine import connect
from services.config import Settings
from services.topics import ensure_topics

log = logging.getLogger("sqm.notifier")
PURGE_EVERY_S = 3600.0
PURGE_BATCH = 2000


def build(settings: Settings) -> Notifier:
    config = load_notify_file(settings.notify_file, "var/alerts.log")
    return Notifier(connect(settings.database_url), config, base_url=settings.base_url,
                    lease_s=settings.delivery_lease_s, backoff_max_s=settings.delivery_backoff_max_s,
                    timeout_s=settings.delivery_timeout_s)


async def consume(settings: Settings, notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(settings.alerts_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=f"{settings.topic_prefix}notifier", enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="sqm-notifier",
                                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                rebalance_timeout_ms=int(settings.effective_rebalance_timeout * 1000),
                                session_timeout_ms=int(max(10.0, settings.effective_rebalance_timeout * 2) * 1000),
                                heartbeat_interval_ms=int(min(3.0, settings.effective_rebalance_timeout / 2) * 1000))
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            transitions = [orjson.loads(m.value) for msgs in batch.values() for m in msgs if m.value]
            if transitions:
                new = await asyncio.to_thread(notifier.ingest, transitions)
                log.info("recorded %d of %d transitions", new, len(transitions))
                wake.set()
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def deliver(notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            try:
                while await notifier.deliver(client, time.time()):
                    pass
            except Exception:
                log.exception("delivery round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.5)
            wake.clear()


async def schedule(notifier: Notifier, wake: asyncio.Event, stop: asyncio.Event, retention_s: float) -> None:
    last_purge = 0.0
    while not stop.is_set():
        try:
            if await asyncio.to_thread(notifier.schedule, time.time()):
                wake.set()
            if time.time() - last_purge >= PURGE_EVERY_S:
                last_purge = time.time()
                purged, n = 0, PURGE_BATCH
                while n == PURGE_BATCH:
                    n = await asyncio.to_thread(notifier.purge, last_purge, retention_s, PURGE_BATCH)
                    purged += n
                if purged:
                    log.info("retention: deleted %d alerts that ended over %.0f days ago", purged, retention_s / 86400)
        except Exception:
            log.exception("scheduling failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def run(settings: Settings) -> None:
    notifier = await asyncio.to_thread(build, settings)
    stop, wake = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("notifier %s: targets %s", notifier.owner, [t.name for t in notifier.config.targets])
    for name, n in (await asyncio.to_thread(notifier.held)).items():
        log.warning("%d notifications wait for target %r, which is not in the notify file: they are held and "
                    "delivered if it comes back (docs/operations.md)", n, name)
    tasks = [asyncio.create_task(c) for c in (consume(settings, notifier, wake, stop),
                                             deliver(notifier, wake, stop),
                                             schedule(notifier, wake, stop, settings.alert_retention_days * 86400))]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    for t in done:
        if t.exception():
            raise t.exception()  # type: ignore[misc]
    await asyncio.gather(*pending, return_exceptions=True)


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s notifier %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ensure_topics(settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
