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
        over = False

        async def counted() -> Any:
            # Past the limit the app is told the body ended: whatever it answers is dropped for a 413
            # (raising here would reach FastAPI's body parser, which turns any error into a 400).
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Any) -> None:
            if not over:
                await send(message)

        await self.app(scope, counted, guarded_send)
        if over:
            await _refuse(send, limit)


async def _refuse(send: Any, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body over {limit} bytes"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
