"""Topics on the real broker: sqm creates them with its counts, and refuses to start on skewed ones."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from db.engine import unavailable
from services.broker import EmbeddedBroker
from services.config import Settings
from services.notifier import Outage, broker_away, build, start
from services.topics import TopicLayoutError, ensure_topics, partition_counts, topic_specs


async def test_a_topic_with_another_partition_count_stops_every_process(broker: EmbeddedBroker,
                                                                        tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=prefix, partitions=4)
    notifying = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/sqm.db"})
    admin = KafkaAdminClient(**settings.kafka.kafka_python())
    try:
        admin.create_topics([NewTopic(settings.state_topic, 2, 1)])  # made by hand, or by an older SQM_PARTITIONS
        with pytest.raises(TopicLayoutError) as err:
            ensure_topics(settings)
        assert str(err.value).startswith(f"topic {prefix}state has 2 partitions, sqm needs 4 (SQM_PARTITIONS=4")
        assert "set SQM_PARTITIONS=2" in str(err.value) and "new SQM_TOPIC_PREFIX" in str(err.value)
        # nothing else was created on the skewed layout
        assert partition_counts(admin, [t.name for t in topic_specs(settings)]) == {settings.state_topic: 2}

        # the worker, the API and the history writer call ensure_topics first thing; the notifier, which
        # retries broker errors until they pass, lets this one through (and exits with it)
        notifier = build(notifying)
        with pytest.raises(TopicLayoutError, match=f"topic {prefix}state has 2 partitions"):
            await asyncio.wait_for(start(notifying, notifier, asyncio.Event(), Outage("db", unavailable),
                                         Outage("broker", broker_away)), 30)
        notifier.engine.dispose()

        # with the count the topics have, everything else is created alongside
        ensure_topics(settings.model_copy(update={"partitions": 2}))
        counts = partition_counts(admin, [t.name for t in topic_specs(settings)])
        assert counts == {t.name: 1 if t.name == settings.rules_topic else 2 for t in topic_specs(settings)}
    finally:
        admin.close()
