"""Request bodies are limited before they are read: a pure ASGI middleware.

A request whose Content-Length exceeds its route's limit is answered 413 at once, before any
authentication or body read (an anonymous 50 MB POST costs nothing). A chunked body without a
length is counted as it streams and cut off with 413 at the limit.

    app.add_middleware(BodyLimit, default=64 * 1024, limits={"/v1/events": 10 * 1024 * 1024})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

Scope = dict[str, Any]


class TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: Any, default: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits or {})

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, limit)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge
            return message

        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Any, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body over {limit} bytes"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
