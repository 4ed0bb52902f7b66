"""Feeds the View from the state topic: every partition, from the beginning, then live. I/O only.

"Warm" means every record written before the API started has been read: the feed writes a sentinel
to each partition at start and is warm once it has read all of them (no trust in ListOffsets).
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from edge.background import BackgroundLoop
from edge.kafka import KafkaClientConfig
from edge.store import assign_from_beginning, sentinel_key
from stream.records import SENTINEL_VALUE
from stream.view import View

log = logging.getLogger(__name__)


class StateFeed(BackgroundLoop):
    name = "state feed"

    def __init__(self, view: View, kafka: KafkaClientConfig, state_topic: str, fetch_max_wait_ms: int = 100) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.view = view
        self.kafka = kafka
        self.state_topic = state_topic
        self.warm = False
        self.last_poll_ok = 0.0
        self.latest_record_ts = 0.0
        self._pending: dict[int, tuple[int, bytes]] = {}  # partition -> (sentinel offset, key)

    def on_failure(self) -> None:
        self.last_poll_ok = 0.0

    async def run_once(self) -> None:
        producer = AIOKafkaProducer(**self.kafka.aiokafka(), acks="all", client_id="sqm-api-feed")
        consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), group_id=None, enable_auto_commit=False,
                                    client_id="sqm-api-feed", max_partition_fetch_bytes=8 * 1024 * 1024,
                                    fetch_max_wait_ms=self.fetch_max_wait_ms)
        await producer.start()
        try:
            await consumer.start()
            await self._follow(consumer, producer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        tps = await assign_from_beginning(consumer, self.state_topic)
        if not self.warm:
            for tp in tps:
                key = sentinel_key()
                meta = await (await producer.send(self.state_topic, key=key, value=SENTINEL_VALUE,
                                                  partition=tp.partition))
                self._pending[tp.partition] = (meta.offset, key)
        last_expire = 0.0
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=20000)
            now = time.time()
            self.last_poll_ok = now
            for tp, msgs in batches.items():
                for m in msgs:
                    self.view.apply(m.key, m.value)
                if msgs:
                    self.latest_record_ts = max(self.latest_record_ts, msgs[-1].timestamp / 1000)
                    pending = self._pending.get(tp.partition)
                    if pending is not None and msgs[-1].offset >= pending[0]:
                        del self._pending[tp.partition]
                        # tombstone: compaction then removes the sentinel too
                        await producer.send(self.state_topic, key=pending[1], value=None,
                                            partition=tp.partition)
            if not self.warm and not self._pending:
                self.warm = True
                log.info("view warm: %d state records read", self.view.records)
            if now - last_expire > 30:
                last_expire = now
                self.view.expire(now=now)
