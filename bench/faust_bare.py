"""The bare Faust agent of the benchmark: decode each message with orjson and count, nothing else.

Run as a process; prints one JSON line with the time of the first and of the N-th message.
"""

from __future__ import annotations

import os
import sys
import time

import faust
import orjson
import uvloop
from faust.worker import Worker


def main() -> None:
    bootstrap, prefix, n = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["SQM_TOPIC_PREFIX"], int(sys.argv[1])
    app = faust.App(f"{prefix}bare-{time.time_ns()}", broker=f"kafka://{bootstrap}", value_serializer="raw",
                    web_enabled=False, broker_rebalance_timeout=5, broker_session_timeout=10,
                    broker_heartbeat_interval=2.5, consumer_auto_offset_reset="earliest", topic_allow_declare=False,
                    producer_linger_ms=5)
    topic = app.topic(f"{prefix}tickets", f"{prefix}calls", f"{prefix}surveys", value_serializer="raw")
    state = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            orjson.loads(value)
            if state["n"] == 0:
                state["first"] = time.time()
            state["n"] += 1
            if state["n"] == n:
                print(orjson.dumps({"first": state["first"], "last": time.time(), "n": n}).decode(), flush=True)
                os._exit(0)

    uvloop.install()  # same event loop as the real worker
    worker = Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
