"""The broker unreachable for half a minute under a running worker, API and notifier: nobody exits, and
the events sent before, during and after are all counted once the broker answers again.

The embedded broker keeps its data in memory only, so the outage is a freeze (SIGSTOP, then SIGCONT):
connections hang and time out as with a partitioned or overloaded broker, and the data survives.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker, free_port
from services.loadgen import random_stream
from services.worker_app import STOP_GRACE_S
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
OUTAGE_S = 30.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(tmp_path / "broker.log")).start()
    yield b
    if b.proc is not None:
        os.kill(b.proc.pid, signal.SIGCONT)
    b.stop()


def test_processes_ride_out_a_frozen_broker(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    stack = Stack(own_broker, tmp_path)
    try:
        now = time.time()
        events = random_stream(1500, now, seed=21)
        stack.worker()
        stack.notifier()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        produce(stack, events[:500])
        wait_for(lambda: stack.seen_messages() >= 500, 60, "the first 500 events", stack)

        assert own_broker.proc is not None
        os.kill(own_broker.proc.pid, signal.SIGSTOP)
        # a producer keeps sending during the outage: its client buffers and retries
        during = threading.Thread(target=produce, args=(stack, events[500:1000]), daemon=True)
        during.start()
        time.sleep(OUTAGE_S)
        for name, p in stack.procs.items():
            assert p.poll() is None, f"{name} exited during the broker outage\n{stack.logs()}"
        os.kill(own_broker.proc.pid, signal.SIGCONT)
        during.join(120)

        produce(stack, events[1000:])
        wait_for(lambda: stack.seen_messages() >= 1500, 150, "every event after the outage", stack)
        time.sleep(2.0)
        assert stack.seen_messages() == 1500, "nothing counted twice"
        for name, p in stack.procs.items():
            assert p.poll() is None, f"{name} exited after the broker outage\n{stack.logs()}"
    finally:
        stack.stop()


def test_a_worker_stopped_during_an_outage_loses_no_batch(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """SIGTERM (a rolling update) while the broker is frozen and the worker's state write retries: the
    worker ends without acknowledging its batch, and its successor counts every event exactly once."""
    stack = Stack(own_broker, tmp_path)
    try:
        events = random_stream(20_000, time.time(), seed=22)
        stack.api()
        stack.worker("w1", role="kpis")
        produce(stack, events, batched=True)
        wait_for(lambda: stack.seen_messages() >= 2_000, 90, "the worker mid-stream", stack)
        assert own_broker.proc is not None
        os.kill(own_broker.proc.pid, signal.SIGSTOP)  # the worker's next state write hangs and retries
        time.sleep(3.0)
        stack.procs["w1"].send_signal(signal.SIGTERM)
        time.sleep(STOP_GRACE_S + 2.0)  # longer than the worker waits for its write
        code = stack.procs["w1"].poll()
        os.kill(own_broker.proc.pid, signal.SIGCONT)
        seen = stack.seen_messages()
        assert seen < 20_000, "the broker was frozen before the worker had counted every event"
        assert code == 70, f"the stopping worker did not end at once without its batch (exit {code})"
        stack.procs.pop("w1")
        stack.worker("w2", role="kpis")
        wait_for(lambda: stack.seen_messages() >= 20_000, 180, "every event, after the restart", stack)
        time.sleep(2.0)
        assert stack.seen_messages() == 20_000, "nothing counted twice"
    finally:
        stack.stop()
