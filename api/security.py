"""Browser-facing defences, as pure ASGI middlewares: cross-site writes refused, security headers.

    app.add_middleware(CrossSiteGuard, cookie=KEY_COOKIE)
    app.add_middleware(SecurityHeaders)

`CrossSiteGuard`: a write (POST, PUT, PATCH, DELETE) that authenticates by the board's cookie (the
cookie sent, no `Authorization` header) must come from the API's own pages: its `Origin` names the
request's own host, or, without an `Origin`, `Sec-Fetch-Site` says `same-origin`. Anything else
(another site, a sibling sub-domain, a request with neither header) is answered 403 before it is
authenticated: SameSite=Strict alone lets a same-site sibling origin acknowledge every alert.
A request with a bearer token is not a browser's ambient credential and is not checked.

`SecurityHeaders`: `Content-Security-Policy` (the board: scripts and connections to itself only, no
frames, no plugins; `/docs`: its vendored viewer's inline start-up script; JSON: nothing at all),
`X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from api.limits import WRITE_METHODS, Scope, answer

BOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
             "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


def _cookie_names(raw: bytes) -> set[str]:
    return {part.split("=", 1)[0].strip() for part in raw.decode("latin-1").split(";") if "=" in part}


def same_origin(headers: dict[bytes, bytes]) -> bool:
    """Whether a browser sent this request from a page of the host it is addressed to."""
    origin = headers.get(b"origin")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if origin is not None:
        o = origin.decode("latin-1")
        return o != "null" and urlsplit(o).netloc.lower() == host and bool(host)
    return headers.get(b"sec-fetch-site") == b"same-origin"


class CrossSiteGuard:
    def __init__(self, app: Any, cookie: str) -> None:
        self.app = app
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            h = _headers(scope)
            by_cookie = b"authorization" not in h and self.cookie in _cookie_names(h.get(b"cookie", b""))
            if by_cookie and not same_origin(h):
                await answer(send, 403, "cross-site request refused: a write with the board's cookie must come "
                              "from the board's own page (Origin or Sec-Fetch-Site)")
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = BOARD_CSP if path.startswith("/board") else DOCS_CSP if path.startswith(("/docs", "/redoc")) \
            else API_CSP
        extra = [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
                 (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k, v) for k, v in extra if k not in have)]}
            await send(message)

        await self.app(scope, receive, with_headers)
