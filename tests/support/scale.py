"""Helpers of the scale-out test: a paced producer in a thread that a test can kill workers beside, and
JSON reads of the stack's API."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import orjson

from services.producer import make_producer, route
from tests.support.stack import Stack


class PacedFeed:
    """Sends `before` in chunks of `chunk` events `pause` s apart, then waits for `release()` and sends
    `after` the same way. `sent` counts what has been handed to the producer so far, so a test can act
    mid-stream (kill a worker) and be sure that `after` only goes out once it has.

        feed = PacedFeed(stack, first_part, rest).start()
        wait_for(lambda: feed.sent >= 400, 30, "the stream under way")
        stack.kill("w1"); feed.release(); feed.join()
    """

    def __init__(self, stack: Stack, before: list[dict[str, Any]], after: list[dict[str, Any]], *,
                 chunk: int = 100, pause: float = 0.1) -> None:
        self.stack, self.before, self.after = stack, before, after
        self.chunk, self.pause = chunk, pause
        self.sent = 0
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-feed", daemon=True)

    def start(self) -> PacedFeed:
        self._thread.start()
        return self

    def release(self) -> None:
        self._go.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the feed did not finish within {timeout} s ({self.sent} sent)")
        if self.error is not None:
            raise AssertionError("the feed failed") from self.error

    def _run(self) -> None:
        producer = make_producer(self.stack.settings)  # one record per batch on the embedded broker
        try:
            self._send(producer, self.before)
            self._go.wait(120)
            self._send(producer, self.after)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            producer.close()

    def _send(self, producer: Any, events: list[dict[str, Any]]) -> None:
        for i in range(0, len(events), self.chunk):
            for ev in events[i:i + self.chunk]:
                kind, key = route(ev)
                producer.send(self.stack.settings.topic(kind), key=key, value=orjson.dumps(ev))
            producer.flush()
            self.sent += len(events[i:i + self.chunk])
            time.sleep(self.pause)


class Api:
    """JSON reads of the stack's API over one kept-alive connection (the KPI check makes a few hundred)."""

    def __init__(self, stack: Stack) -> None:
        self.client = httpx.Client(base_url=stack.url, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self.client.close()
