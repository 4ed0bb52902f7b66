"""The history writer's loop: follow the state topic, write minute rows, roll up and purge. I/O edge.

Reads every partition of the state topic from the beginning (the compacted topic holds the last
24 h of buckets), folds the bucket records into `Minutes`, and every `flush_s` writes the minutes
that changed (in a thread: the database never blocks the consumer). Every `maintain_s` it rolls
minute rows older than the minute retention up into hours and deletes rows past the retention.

The database may be down, at start or later: the writer goes on reading the topic, keeps the
minutes that changed in memory and tries again after 1 s, then twice as long each time up to
`retry_max_s`; once the database answers it writes every minute that changed meanwhile (the
minutes of the outage included) and logs how long it waited. It never exits for a database error.
`prepare` (the migrations) is run, with the same retries, before the first write.

Restarts are exact: the topic is read again from the beginning and each minute's row is rewritten
with the same merged accumulator (no double count); a minute that expired from the topic while the
writer was down for more than 24 h is missing (a gap a backfill of the raw events can fill).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from sqlalchemy.exc import SQLAlchemyError

from edge.background import BackgroundLoop
from edge.kafka import KafkaClientConfig
from edge.store import assign_from_beginning
from history.minutes import Minutes
from history.series import minute_rows_to_keep
from history.store import HistoryStore
from stream.windows import LONGEST

log = logging.getLogger(__name__)
RETRY_FIRST_S = 1.0
MAINTAIN_RETRY_S = 60.0


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


class HistoryWriter(BackgroundLoop):
    name = "history writer"

    def __init__(self, store: HistoryStore, kafka: KafkaClientConfig, state_topic: str, *, minute_days: float,
                 keep_days: float, flush_s: float = 5.0, maintain_s: float = 3600.0,
                 fetch_max_wait_ms: int = 100, prepare: Callable[[], None] | None = None,
                 retry_max_s: float = 10.0) -> None:
        self.store = store
        self.kafka = kafka
        self.state_topic = state_topic
        self.minute_days = minute_days
        self.keep_days = keep_days
        self.flush_s = flush_s
        self.maintain_s = maintain_s
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.prepare = prepare
        self.retry_max_s = retry_max_s
        self.minutes = Minutes()
        self.written = 0
        self.last_flush = 0.0
        self.last_maintain = 0.0
        self.retry_at = 0.0  # no write before this (the database failed)
        self.retry_s = RETRY_FIRST_S
        self.down_since: float | None = None

    def on_failure(self) -> None:
        self.minutes = Minutes()  # read again from the beginning

    async def run_once(self) -> None:
        consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), group_id=None, enable_auto_commit=False,
                                    client_id="sqm-history", max_partition_fetch_bytes=8 * 1024 * 1024,
                                    fetch_max_wait_ms=self.fetch_max_wait_ms)
        await consumer.start()
        try:
            await assign_from_beginning(consumer, self.state_topic)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=20000)
                for msgs in batches.values():
                    for m in msgs:
                        self.minutes.apply(m.key, m.value)
                now = time.time()
                retry_due = self.down_since is not None and now >= self.retry_at
                if now - self.last_flush >= self.flush_s or retry_due:
                    await self.flush(now)
                if now - self.last_maintain >= self.maintain_s and self.prepare is None:
                    await self.maintain_now(now)
        finally:
            await consumer.stop()

    async def flush(self, now: float, *, force: bool = False) -> None:
        """Write the minutes that changed; while the database is down keep them for the next attempt
        (`force`: try now even so, as at the last flush before stopping)."""
        self.last_flush = now
        if force or now >= self.retry_at:
            fresh, final = self.minutes.drain(now)
            try:
                if self.prepare is not None:
                    await asyncio.to_thread(self.prepare)
                    self.prepare = None
                if fresh:
                    self.written += await asyncio.to_thread(self.store.upsert, fresh)
                if final:
                    self.written += await asyncio.to_thread(self.store.insert_missing, final)
            except (SQLAlchemyError, OSError) as exc:
                self.minutes.again(fresh + final)
                self._failed(now, exc)
            else:
                self._recovered(len(fresh) + len(final))
        self.minutes.expire(now)

    def _failed(self, now: float, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since, self.retry_s = now, RETRY_FIRST_S
        log.warning("history: the database is unavailable (%s); %d changed minutes kept in memory, trying "
                    "again in %.0f s", _reason(exc), self.minutes.pending(), self.retry_s)
        self.retry_at = now + self.retry_s
        self.retry_s = min(self.retry_max_s, self.retry_s * 2)

    def _recovered(self, rows: int) -> None:
        if self.down_since is not None:
            log.info("history: the database is back after %.0f s; %d minute rows written that waited",
                     time.time() - self.down_since, rows)
            self.down_since, self.retry_at = None, 0.0

    async def maintain_now(self, now: float) -> None:
        self.last_maintain = now
        try:
            await asyncio.to_thread(self.maintain, now)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("history: rollup and purge not done (%s); trying again in %.0f s", _reason(exc),
                        MAINTAIN_RETRY_S)
            self.last_maintain = now - self.maintain_s + MAINTAIN_RETRY_S

    def maintain(self, now: float) -> None:
        rolled = self.store.rollup(minute_rows_to_keep(now, self.minute_days, LONGEST))
        purged = self.store.purge(int(now - self.keep_days * 86400))
        if rolled or purged:
            log.info("history: %d minute rows rolled up into hours, %d rows past retention deleted", rolled, purged)
