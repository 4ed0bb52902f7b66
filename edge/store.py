"""The state topic as a store: write record batches, read one partition back. I/O only (aiokafka).

Reading back does not trust ListOffsets: it first writes a sentinel record to the partition and
reads until it sees it. Every record written before the sentinel is then known to be read, on any
Kafka-compatible broker (the embedded one reports wrong end offsets for multi-record batches).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from edge.kafka import KafkaClientConfig
from stream.records import SENTINEL_VALUE, Heartbeat, HeartbeatKey, Record, SentinelKey, encode_key
from stream.scopes import scope_partition
from stream.state import DeadLetter, Scoped

log = logging.getLogger(__name__)


def sentinel_key() -> bytes:
    return encode_key(SentinelKey.new())


class StateStore:
    def __init__(self, kafka: KafkaClientConfig, state_topic: str, deadletter_topic: str, source_topics: dict[str, str],
                 scopes_topic: str | None = None, scope_partitions: int = 1):
        self.kafka = kafka
        self.state_topic = state_topic
        self.scopes_topic = scopes_topic
        self.scope_partitions = scope_partitions
        self.deadletter_topic = deadletter_topic
        self.source_topics = source_topics
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **self.kafka.aiokafka(), acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024,
            max_batch_size=512 * 1024,
            client_id="sqm-state",
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("StateStore.start() was not awaited")
        return self._producer

    async def write(self, records: Sequence[tuple[int, Record]],
                    dead: Sequence[tuple[DeadLetter, bytes | None]], scoped: Sequence[Scoped] = ()) -> None:
        """Send every record and dead letter, and return only once the broker has them all.

        The scoped copies go to the scope topic first and are awaited before the state records.
        """
        if scoped and self.scopes_topic is not None:
            n = self.scope_partitions
            routed = [(q, rec) for scopes, rec in scoped for q in {scope_partition(s, n) for s in scopes}]
            futs = await self._send_batches(routed, self.scopes_topic)
            await asyncio.gather(*futs)
        send = self.producer.send
        futs = await self._send_batches(records, self.state_topic)
        for d, key in dead:
            headers = [
                ("sqm-reason", d.reason.encode()),
                ("sqm-detail", d.detail.encode()[:1000]),
                ("sqm-source-topic", self.source_topics[d.topic].encode()),
                ("sqm-source-partition", str(d.partition).encode()),
                ("sqm-source-offset", str(d.offset).encode()),
            ]
            futs.append(await send(self.deadletter_topic, key=key, value=d.raw, partition=d.partition,
                                   headers=headers))
        if futs:
            await asyncio.gather(*futs)

    async def _send_batches(self, records: Sequence[tuple[int, Record]], topic: str) -> list[asyncio.Future[Any]]:
        # One producer batch per partition instead of one send() per record: a batch of a few
        # thousand records costs one coroutine round trip instead of thousands (measured on the
        # full pipeline). Record order within a partition is kept.
        producer = self.producer
        by_partition: dict[int, list[Record]] = {}
        for p, r in records:
            by_partition.setdefault(p, []).append(r)
        futs = []
        for p, recs in by_partition.items():
            batch = producer.create_batch()
            for k, v in recs:
                if batch.append(key=k, value=v, timestamp=None) is None:  # full: ship it, start another
                    futs.append(await producer.send_batch(batch, topic, partition=p))
                    batch = producer.create_batch()
                    if batch.append(key=k, value=v, timestamp=None) is None:
                        raise ValueError(f"state record of {len(v or b'')} bytes exceeds the producer batch size")
            if batch.record_count():
                futs.append(await producer.send_batch(batch, topic, partition=p))
        return futs

    async def write_heartbeat(self, worker_id: str, heartbeat: Heartbeat) -> None:
        fut = await self.producer.send(self.state_topic, key=encode_key(HeartbeatKey(worker_id)),
                                       value=heartbeat.to_bytes(), partition=0)
        await fut

    async def read_partition(self, partition: int, topic: str | None = None) -> list[Record]:
        """Every record of partition `partition` of the state topic (or `topic`), in order, up to now."""
        return await read_to_sentinel(self.producer, self.kafka, topic or self.state_topic, partition)


async def read_to_sentinel(producer: AIOKafkaProducer, kafka: KafkaClientConfig, topic: str,
                           partition: int) -> list[Record]:
    """Every record of one partition of a compacted topic, in order, up to a sentinel written now."""
    return (await read_to_sentinel_at(producer, kafka, topic, partition))[0]


async def read_to_sentinel_at(producer: AIOKafkaProducer, kafka: KafkaClientConfig, topic: str,
                              partition: int) -> tuple[list[Record], int]:
    """`read_to_sentinel`, plus the sentinel's offset: a reader that goes on from there misses nothing."""
    sentinel = sentinel_key()
    meta = await (await producer.send(topic, key=sentinel, value=SENTINEL_VALUE, partition=partition))
    stop_at = meta.offset
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False, group_id=None,
                                client_id="sqm-recovery")
    await consumer.start()
    out: list[Record] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        done = False
        while not done:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=10000)
            for msg in batch.get(tp, []):
                if msg.offset >= stop_at:
                    done = True
                    break
                out.append((msg.key, msg.value))
    finally:
        await consumer.stop()
    # tombstone: compaction then removes the sentinel too
    await producer.send(topic, key=sentinel, value=None, partition=partition)
    log.info("recovered %d records of %s[%d]", len(out), topic, partition)
    return out, stop_at


async def assign_from_beginning(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Assign every partition of `topic` to `consumer`, positioned at the beginning (waits for the
    topic's metadata)."""
    parts = consumer.partitions_for_topic(topic)
    while not parts:
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.5)
        parts = consumer.partitions_for_topic(topic)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return tps
