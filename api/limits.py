"""What a request may cost, decided before its body is read: pure ASGI middlewares and their policy.

    app.add_middleware(RateLimit, buckets=TokenBuckets(rate=20, burst=100), identify=client_of)
    app.add_middleware(BodyLimit, default=64 * 1024, limits={"/v1/events": 10 * 1024 * 1024})

`BodyLimit`: a Content-Length over the route's limit is answered 413 at once, before any
authentication; a body without a length is counted as it streams and cut off with 413 at the limit.
A response sent before the body was read to its end (a 401, a 403, a 429, a 413) closes the
connection: otherwise uvicorn reads the rest of the body and throws it away to reuse the connection
(measured: an anonymous chunked 50 MB POST to /v1/events was read in full after its 401).

`RateLimit`: one token bucket per client for the writes (POST, PUT, PATCH, DELETE): `burst`
requests at once, then `rate` a second; over that, 429 with Retry-After. The client is the API key
or token when the request carries a valid one, else the client's address (`identify`). Reads (GET,
HEAD) have buckets of their own (`reads`), counted the same way; the probes and the board's static
files are not counted.

`StreamSlots`: how many Server-Sent-Event streams are open per client address and per key; a stream
beyond either cap is refused (the board router answers 429 with Retry-After).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

Scope = dict[str, Any]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
UNCOUNTED_READS = ("/healthz", "/readyz", "/board/static/", "/favicon.ico")  # probes, cached assets


class BodyLimit:
    def __init__(self, app: Any, default: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits or {})

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await answer(send, 413, f"request body over {limit} bytes")
            return
        seen = 0
        over = started = False
        ended = b"transfer-encoding" not in headers and (length is None or int(length) == 0)

        async def counted() -> Any:
            # Past the limit the app is told the body ended: whatever it answers is dropped for a 413
            # (raising here would reach FastAPI's body parser, which turns any error into a 400).
            nonlocal seen, over, ended
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                ended = ended or not message.get("more_body", False)
                if seen > limit:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            elif message["type"] == "http.disconnect":
                ended = True
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if over:
                return
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                # answered before the body was read to its end: close, so that the rest is never read
                if not ended and (b"connection", b"close") not in headers:
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, guarded_send)
        if over and not started:
            await answer(send, 413, f"request body over {limit} bytes")


@dataclass
class TokenBuckets:
    """A token bucket per client: `burst` tokens, refilled at `rate` a second, one per request. Pure:
    the caller passes `now`.

    >>> b = TokenBuckets(rate=2.0, burst=2)
    >>> [b.take("k", now=0.0) for _ in range(3)]   # two at once, then wait half a second
    [0.0, 0.0, 0.5]
    >>> b.take("k", now=0.5), b.take("other", now=0.5)
    (0.0, 0.0)
    """

    rate: float
    burst: float
    max_clients: int = 10_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (tokens, at)

    def take(self, client: str, now: float) -> float:
        """0.0 when `client` may go ahead (a token is taken), else the seconds until it may."""
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_clients:
                self._forget(now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop the buckets that are full again (they start full anyway); if too many are still busy,
        the least recently used half."""
        refill_s = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill_s}
        if len(self._buckets) > self.max_clients:
            recent = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[len(self._buckets) // 2:]
            self._buckets = dict(recent)

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimit:
    def __init__(self, app: Any, buckets: TokenBuckets | None, identify: Callable[[Scope], str],
                 clock: Callable[[], float] = time.monotonic, reads: TokenBuckets | None = None) -> None:
        self.app = app
        self.buckets = buckets
        self.reads = reads
        self.identify = identify
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        b: TokenBuckets | None = None
        if method in WRITE_METHODS:
            b, what = self.buckets, "writes"
        elif method in READ_METHODS and self.reads is not None and not scope["path"].startswith(UNCOUNTED_READS):
            b, what = self.reads, "reads"
        if b is None:
            await self.app(scope, receive, send)
            return
        wait = b.take(self.identify(scope), self.clock())
        if wait > 0:
            await answer(send, 429, f"too many {what}: at most {b.rate:g} a second ({b.burst:g} at once) per key "
                          "or client address", {b"retry-after": str(max(1, math.ceil(wait))).encode()}, close=False)
            return
        await self.app(scope, receive, send)


class StreamSlots:
    """Open streams per key (a request with a valid key or token) or per client address (one without),
    each capped, as the rate limits count. Pure bookkeeping.

    >>> slots = StreamSlots(per_client=2, per_key=3)
    >>> [slots.take("address 10.0.0.1", None) for _ in range(3)]
    [True, True, False]
    >>> [slots.take("address 10.0.0.1", "key wall (read)") for _ in range(4)]
    [True, True, True, False]
    >>> slots.give_back("address 10.0.0.1", None); slots.take("address 10.0.0.1", None)
    True
    """

    def __init__(self, per_client: int, per_key: int) -> None:
        self.per_client = per_client
        self.per_key = per_key
        self.counts: dict[str, int] = {}
        self.refused = 0

    def take(self, client: str, key: str | None) -> bool:
        who, cap = (key, self.per_key) if key is not None else (client, self.per_client)
        n = self.counts.get(who, 0)
        if n >= cap:
            self.refused += 1
            return False
        self.counts[who] = n + 1
        return True

    def give_back(self, client: str, key: str | None) -> None:
        who = key if key is not None else client
        if who in self.counts:
            self.counts[who] -= 1
            if self.counts[who] <= 0:
                del self.counts[who]

    @property
    def open(self) -> int:
        return sum(self.counts.values())


async def answer(send: Any, status: int, detail: str, headers: Mapping[bytes, bytes] | None = None, *,
                  close: bool = True) -> None:
    body = orjson.dumps({"detail": detail})
    extra = [*(headers or {}).items(), *([(b"connection", b"close")] if close else [])]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})
