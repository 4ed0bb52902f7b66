"""The worker's batch step without a broker: events -> messages -> Processor -> MemorySink -> View."""

from __future__ import annotations

import time
from typing import Any

import orjson

from services.loadgen import topic_and_key
from stream.folds import KpiConfig
from stream.processor import Message, Processor
from stream.view import View
from tests.support.fakes import MemorySink

NOW = time.time()
PARTITIONS = 3


def to_messages(events: list[Any], partitions: int = PARTITIONS) -> list[Message]:
    """Assign offsets per (topic, partition) as a broker would; raw bytes pass through as they are."""
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for ev in events:
        if isinstance(ev, bytes):
            topic, key, raw = "tickets", "garbage", ev
        else:
            topic, key = topic_and_key(ev)
            raw = orjson.dumps(ev)
        p = hash(key) % partitions
        o = offsets.get((topic, p), 0)
        offsets[(topic, p)] = o + 1
        out.append(Message(topic, p, o, key.encode(), raw))
    return out


def view_of(sink: MemorySink) -> View:
    v = View(60)
    for k, val in sink.all_records():
        v.apply(k, val)
    return v


async def run(messages: list[Message], batch: int = 50, sink: MemorySink | None = None,
              now: float = NOW) -> MemorySink:
    sink = sink or MemorySink()
    proc = Processor(sink, KpiConfig(), 60, 7 * 86400)
    for i in range(0, len(messages), batch):
        await proc.process(messages[i:i + batch], now=now)
    return sink
