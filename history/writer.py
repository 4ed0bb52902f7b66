"""The history writer's loop: follow the state topic, write minute rows, roll up and purge. I/O edge.

Reads every partition of the state topic from the beginning (the compacted topic holds the last
24 h of buckets), folds the bucket records into `Minutes`, and every `flush_s` writes the minutes
that changed (in a thread: the database never blocks the consumer). Every `maintain_s` it rolls
minute rows older than the minute retention up into hours and deletes rows past the retention.

Restarts are exact: the topic is read again from the beginning and each minute's row is rewritten
with the same merged accumulator (no double count); a minute that expired from the topic while the
writer was down for more than 24 h is missing (a gap a backfill of the raw events can fill).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer

from history.minutes import Minutes
from history.series import minute_rows_to_keep
from history.store import HistoryStore
from stream.background import BackgroundLoop
from stream.store import assign_from_beginning
from stream.windows import LONGEST

log = logging.getLogger(__name__)


class HistoryWriter(BackgroundLoop):
    name = "history writer"

    def __init__(self, store: HistoryStore, bootstrap: str, state_topic: str, *, minute_days: float,
                 keep_days: float, flush_s: float = 5.0, maintain_s: float = 3600.0,
                 fetch_max_wait_ms: int = 100) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.state_topic = state_topic
        self.minute_days = minute_days
        self.keep_days = keep_days
        self.flush_s = flush_s
        self.maintain_s = maintain_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.minutes = Minutes()
        self.written = 0
        self.last_flush = 0.0

    def on_failure(self) -> None:
        self.minutes = Minutes()  # read again from the beginning

    async def run_once(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id="sqm-history", max_partition_fetch_bytes=8 * 1024 * 1024,
                                    fetch_max_wait_ms=self.fetch_max_wait_ms)
        await consumer.start()
        try:
            await assign_from_beginning(consumer, self.state_topic)
            last_maintain = 0.0
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=20000)
                for msgs in batches.values():
                    for m in msgs:
                        self.minutes.apply(m.key, m.value)
                now = time.time()
                if now - self.last_flush >= self.flush_s:
                    await self.flush(now)
                if now - last_maintain >= self.maintain_s:
                    last_maintain = now
                    await asyncio.to_thread(self.maintain, now)
        finally:
            await consumer.stop()

    async def flush(self, now: float) -> None:
        fresh, final = self.minutes.drain(now)
        if fresh:
            self.written += await asyncio.to_thread(self.store.upsert, fresh)
        if final:
            self.written += await asyncio.to_thread(self.store.insert_missing, final)
        self.minutes.expire(now)
        self.last_flush = now

    def maintain(self, now: float) -> None:
        rolled = self.store.rollup(minute_rows_to_keep(now, self.minute_days, LONGEST))
        purged = self.store.purge(int(now - self.keep_days * 86400))
        if rolled or purged:
            log.info("history: %d minute rows rolled up into hours, %d rows past retention deleted", rolled, purged)
