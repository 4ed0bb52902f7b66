"""The rules feed on the real broker: `ready` means every rule written before it started is loaded."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer

from alerts.feed import RulesFeed, publish_rule, publish_rules
from alerts.rules import Rule
from services.broker import EmbeddedBroker
from services.config import Settings
from services.topics import ensure_topics


def rule(i: int) -> Rule:
    return Rule.model_validate({"id": f"r{i}", "kpi": "service_level", "scope": f"team:t{i}", "op": "<",
                                "warning": 0.8, "summary": "x" * 2000})


async def test_ready_only_after_reading_to_a_sentinel(broker: EmbeddedBroker) -> None:
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
    await producer.start()
    try:
        await publish_rules(producer, settings.kafka, settings.rules_topic, [rule(i) for i in range(1500)])
        # later deletions: the latest record of each id counts
        await asyncio.gather(*[await producer.send(settings.rules_topic, key=f"r{i}".encode(), value=None,
                                                   partition=0) for i in range(0, 1500, 2)])
        feed = RulesFeed(settings.kafka, settings.rules_topic)
        feed.use(producer)
        await feed.start()
        try:
            await asyncio.wait_for(feed.ready.wait(), 30)
            assert sorted(feed.rules) == sorted(f"r{i}" for i in range(1, 1500, 2)), len(feed.rules)
            await publish_rule(producer, settings.rules_topic, "r0", rule(0))  # followed after the load
            for _ in range(100):
                if "r0" in feed.rules:
                    break
                await asyncio.sleep(0.1)
            assert "r0" in feed.rules and len(feed.rules) == 751
        finally:
            await feed.stop()
    finally:
        await producer.stop()
