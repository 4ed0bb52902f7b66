"""Producing contract events to their topics (kafka-python), shared by the simulator, replay and tests.

On the embedded broker, producers write one record per batch (`batch_size=1`): its ListOffsets
reports wrong end offsets for multi-record batches (FIELD-NOTES). Our own recovery does not rely on
end offsets, but consumer-lag figures of any tool do. Production Kafka gets normal batching.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaProducer

from services.config import Settings

KEY_FIELDS = {"ticket": ("tickets", "ticket_id"), "call": ("calls", "call_id"), "survey": ("surveys", "survey_id"),
              "agent": ("agents", "agent")}


def route(ev: dict[str, Any]) -> tuple[str, bytes | None]:
    """(topic kind, key) of a contract event; unknown families go to tickets, to be dead-lettered there."""
    fam = str(ev.get("type", "")).split(".")[0]
    kind, field = KEY_FIELDS.get(fam, ("tickets", "ticket_id"))
    key = ev.get(field)
    return kind, str(key).encode() if key is not None else None


def make_producer(settings: Settings, one_record_batches: bool | None = None) -> KafkaProducer:
    single = settings.kafka_is_local if one_record_batches is None else one_record_batches
    extra: dict[str, Any] = {"batch_size": 1} if single else {"linger_ms": 5}
    return KafkaProducer(**settings.kafka.kafka_python(), acks="all", client_id="sqm-producer",
                         max_request_size=2 * 1024 * 1024, **extra)


def send_events(producer: KafkaProducer, settings: Settings, events: Iterable[dict[str, Any]]) -> int:
    n = 0
    for ev in events:
        kind, key = route(ev)
        producer.send(settings.topic(kind), key=key, value=orjson.dumps(ev))
        n += 1
    return n
