"""GET /board (the page), GET /board/stream (Server-Sent Events), POST /board/alerts/{id}/ack.

Reads follow SQM_READ_AUTH. A wall screen opens `/board?key=<read key>` once: the key goes into an
HttpOnly cookie and the browser is sent to the same URL without it, so the key is not left in the
address bar, the history or a screenshot. Acknowledging needs an admin key (cookie or bearer): the
page shows the Acknowledge buttons only to a viewer with one, and tells the others how to sign in.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from html import escape
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse

from api.board.i18n import pick_lang
from api.board.model import BoardConfig
from api.board.service import SECTIONS, Board
from api.deps import (
    DATABASE_DOWN,
    KEY_COOKIE,
    RETRY_AFTER_S,
    HistoryDep,
    ViewDep,
    identities,
    principal_of,
    require_admin,
    require_read,
    token_of,
)
from api.limits import StreamSlots
from api.routers.alerting import acknowledge
from stream.clock import rfc3339

router = APIRouter(prefix="/board", include_in_schema=False)
PUSH_EVERY_S = 0.5  # how often a stream looks for changed sections
AS_OF_EVERY_S = 5.0  # a heartbeat the page counts as an update even when no figure changed
REAUTH_EVERY_S = 10.0  # how soon an open stream notices that its key was revoked
STREAM_RETRY_S = 30  # Retry-After of a stream refused for the cap


def board_of(request: Request) -> Board:
    board = getattr(request.app.state, "board", None)
    if not isinstance(board, Board):
        raise HTTPException(503, "board not available")
    return board


def config_of(request: Request) -> BoardConfig:
    """The board's filters, held to the scopes and queues the view knows (so that a made-up one neither
    renders a board of its own nor starts a history read of its own)."""
    q = dict(request.query_params)
    cfg = BoardConfig.from_query(q, pick_lang(q.get("lang"), request.headers.get("accept-language")))
    view = getattr(request.app.state, "view", None)
    return cfg.known(set(view.scopes(now=time.time()))) if view is not None else cfg


@router.get("", response_class=HTMLResponse)
async def board_page(request: Request) -> Response:
    key = request.query_params.get("key")
    if key is not None:
        if principal_of(request, key) is None:
            return HTMLResponse("<p>This key is not valid (revoked, or mistyped).</p>", status_code=401)
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
        resp = RedirectResponse(f"{request.url.path}?{rest}" if rest else request.url.path, status_code=303)
        resp.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", max_age=400 * 86400,
                        secure=request.url.scheme == "https")
        return resp
    try:
        require_read(request, None)
    except HTTPException as exc:
        return HTMLResponse(f"<p>{escape(str(exc.detail))}. Open <code>/board?key=&lt;read key&gt;</code> once "
                            "on this screen.</p>", status_code=exc.status_code)
    cfg = config_of(request)
    stream = f"{request.url.path}/stream?{request.url.query}" if request.url.query else f"{request.url.path}/stream"
    who = principal_of(request, token_of(request))
    html = board_of(request).page(cfg, stream_url=stream, static=f"{request.url.path}/static",
                                  can_ack=who is not None and who.can("admin"))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/stream")
async def board_stream(request: Request) -> EventSourceResponse:
    """The board's sections: all of them on connect, then each one again when it changes."""
    require_read(request, None)
    board, cfg = board_of(request), config_of(request)
    slots: StreamSlots = request.app.state.streams
    client, key = identities(request)
    if not slots.take(client, key):
        raise HTTPException(429, f"too many board streams open: at most {slots.per_key} per key, "
                            f"{slots.per_client} per client address without one",
                            headers={"Retry-After": str(STREAM_RETRY_S)})
    taken = [True]

    def give_back() -> None:
        if taken:
            taken.clear()
            slots.give_back(client, key)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in _events(request, board, cfg):
                yield event
        finally:
            give_back()

    stream = events()
    weakref.finalize(stream, give_back)  # a stream the client left before its first event never runs its finally
    return EventSourceResponse(stream, ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(request: Request, board: Board, cfg: BoardConfig) -> AsyncIterator[dict[str, str]]:
    sent: dict[str, str] = {}
    last_as_of, last_auth = 0.0, time.time()
    while True:
        now = time.time()
        if now - last_auth >= REAUTH_EVERY_S:  # a key revoked meanwhile ends the stream
            last_auth = now
            try:
                require_read(request, None)
            except HTTPException:
                return
        sections = board.sections(cfg, now)
        changed = False
        for name in SECTIONS:
            html = sections[name]
            if sent.get(name) != html:
                sent[name] = html
                changed = True
                yield {"event": name, "data": html}
        if changed or now - last_as_of >= AS_OF_EVERY_S:
            last_as_of = now
            yield {"event": "as_of", "data": rfc3339(now)}
        await asyncio.sleep(PUSH_EVERY_S)


@router.post("/alerts/{alert_id}/ack", response_class=HTMLResponse)
async def board_ack(alert_id: str, request: Request, history: HistoryDep, view: ViewDep) -> Response:
    """Acknowledge from the board: answers the alert's row as it now is (or why not, in its place)."""
    try:
        who = require_admin(request, None)
        alert = await acknowledge(history, view, alert_id, who=who.name, note="from the board")
    except HTTPException as exc:
        return HTMLResponse(_error_row(alert_id, str(exc.detail)), status_code=exc.status_code)
    except DATABASE_DOWN:
        return HTMLResponse(_error_row(alert_id, "not acknowledged: the database is unavailable; try again later"),
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return HTMLResponse(board_of(request).alert_row(alert, config_of(request)))


def _error_row(alert_id: str, why: str) -> str:
    return f'<li class="alert error" data-alert-id="{escape(alert_id)}">{escape(why)}</li>'
