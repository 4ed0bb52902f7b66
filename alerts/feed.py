"""The rules topic (compacted, one partition, key = rule id): publish the effective rule set, follow it.

The API is the only writer: at start it publishes the rules of the rule file and of the database and
tombstones any other id found on the topic; each API change publishes one record. Every worker
follows the topic from the beginning (`RulesFeed`) and evaluates the latest version of each rule.
The feed is `ready` only once it has read up to a sentinel it wrote itself: an empty fetch on a slow
broker proves nothing, and evaluating a partial rule set would resolve the alerts of the rules not
read yet and fire them again under new ids.
A record that does not validate (a newer producer, a hand-written record) is logged and skipped;
the other rules go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from alerts.rules import Rule
from edge.background import BackgroundLoop
from edge.kafka import KafkaClientConfig
from edge.store import read_to_sentinel, read_to_sentinel_at
from stream.records import SentinelKey, decode_key

log = logging.getLogger(__name__)


class RulesFeed(BackgroundLoop):
    name = "rules feed"

    def __init__(self, kafka: KafkaClientConfig, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.rules: dict[str, Rule] = {}
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    def use(self, producer: AIOKafkaProducer) -> None:
        """Before `start`: the producer that writes the sentinel the first read goes up to."""
        self._producer = producer

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key or isinstance(decode_key(key), SentinelKey):
            return
        rid = key.decode(errors="replace")
        if value is None:
            self.rules.pop(rid, None)
            return
        try:
            self.rules[rid] = Rule.model_validate(orjson.loads(value))
        except (ValidationError, orjson.JSONDecodeError) as exc:
            log.error("rule %s on %s skipped: %s", rid, self.topic, exc)
            self.rules.pop(rid, None)

    async def run_once(self) -> None:
        if self._producer is None:
            raise RuntimeError("RulesFeed.use() was not called before start()")
        records, at = await read_to_sentinel_at(self._producer, self.kafka, self.topic, 0)
        self.rules = {}  # rebuilt without an await in between: nobody sees half of it
        for k, v in records:
            self.apply(k, v)
        self.ready.set()  # every record written before the sentinel is in: the rule set is complete
        log.info("rules feed: %d rules loaded from %s", len(self.rules), self.topic)
        consumer = AIOKafkaConsumer(**self.kafka.aiokafka(), enable_auto_commit=False, group_id=None,
                                    client_id="sqm-rules-feed")
        try:
            await consumer.start()
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, at)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                for msg in batch.get(tp, []):
                    self.apply(msg.key, msg.value)
        finally:
            await consumer.stop()


async def publish_rules(producer: AIOKafkaProducer, kafka: KafkaClientConfig, topic: str,
                        rules: Iterable[Rule]) -> None:
    """Make the topic hold exactly `rules`: write each, tombstone ids that are no longer there."""
    present = {k for k, v in await read_to_sentinel(producer, kafka, topic, 0)
               if k and not isinstance(decode_key(k), SentinelKey)}
    wanted = {r.id.encode(): orjson.dumps(r.to_doc()) for r in rules}
    futs = [await producer.send(topic, key=k, value=v, partition=0) for k, v in wanted.items()]
    futs += [await producer.send(topic, key=k, value=None, partition=0) for k in present - wanted.keys()]
    await asyncio.gather(*futs)


async def publish_rule(producer: AIOKafkaProducer, topic: str, rule_id: str, rule: Rule | None) -> None:
    value = orjson.dumps(rule.to_doc()) if rule is not None else None
    await (await producer.send(topic, key=rule_id.encode(), value=value, partition=0))
