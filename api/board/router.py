"""GET /board (the page), GET /board/stream (Server-Sent Events), POST /board/alerts/{id}/ack.

Reads follow SQM_READ_AUTH. A screen signs in once at /board/login (a POST form, from this page only):
the browser keeps a signed session cookie for the board's paths (api/sessions.py), never the key,
renewed at each page load past half its life. A key in the URL (`?key=`, the old way) is refused, as
it would stay in the history. Acknowledging needs an admin key (session or bearer): the page shows
the Acknowledge buttons only to a viewer with one, and tells the others how to sign in.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse

from api import sessions
from api.board.i18n import WORDS, pick_lang
from api.board.model import BoardConfig
from api.board.service import SECTIONS, Board
from api.deps import (
    DATABASE_DOWN,
    KEY_COOKIE,
    RETRY_AFTER_S,
    HistoryDep,
    ReadDep,
    ViewDep,
    get_settings,
    identities,
    principal_of,
    require_admin,
    require_read,
    session_secret,
    token_of,
)
from api.limits import StreamSlots
from api.routers.alerts import acknowledge
from api.security import same_origin
from stream.clock import rfc3339

router = APIRouter(prefix="/board", include_in_schema=False)
PUSH_EVERY_S = 0.5  # how often a stream looks for changed sections
AS_OF_EVERY_S = 5.0  # a heartbeat the page counts as an update even when no figure changed
REAUTH_EVERY_S = 10.0  # how soon an open stream notices that its key was revoked
STREAM_RETRY_S = 30  # Retry-After of a stream refused for the cap


# The page and the acknowledgement call require_read / require_admin themselves (the functions behind
# ReadDep and AdminDep): they answer in HTML (the sign-in form, an alert row saying why), not in JSON.
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


def _secure(request: Request) -> bool:
    """The cookie's Secure flag: always, unless the API is on loopback and the request came over http
    (behind a TLS proxy the scheme is the proxy's X-Forwarded-Proto when SQM_API_TRUSTED_PROXIES trusts it)."""
    return request.url.scheme == "https" or not get_settings(request).api_is_loopback


def _set_cookie(resp: Response, request: Request, session: str) -> None:
    resp.set_cookie(KEY_COOKIE, session, httponly=True, samesite="strict", path="/board", secure=_secure(request),
                    max_age=int(get_settings(request).session_days * 86400))


def _set_session(resp: Response, request: Request, key: str) -> None:
    ttl = get_settings(request).session_days * 86400
    _set_cookie(resp, request, sessions.issue(key, secret=session_secret(request), now=time.time(), ttl_s=ttl))


def _renewed(resp: Response, request: Request) -> Response:
    """Renew a session past half its life (a wall screen reloading its board stays signed in)."""
    cookie = request.cookies.get(KEY_COOKIE)
    if not cookie:
        return resp
    now, secret, ttl = time.time(), session_secret(request), get_settings(request).session_days * 86400
    fingerprint, expires = sessions.verify(cookie, secret, now), sessions.expires_at(cookie)
    if fingerprint is not None and expires is not None and expires - now < ttl / 2 and principal_of(request, cookie):
        _set_cookie(resp, request, sessions.reissue(fingerprint, secret=secret, now=now, ttl_s=ttl))
    return resp


def _safe_next(target: str) -> str:
    """Where to go after signing in: a board URL of this API, never another site (`//evil`, `/\\evil`)."""
    return target if target.startswith("/board") and not target.startswith(("//", "/\\")) else "/board"


def _login_page(request: Request, next_url: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    lang = pick_lang(request.query_params.get("lang"), request.headers.get("accept-language"))
    t = {k: v[lang] for k, v in WORDS.items()}
    html = board_of(request).env.get_template("login.html").render(
        t=t, lang=lang, static="/board/static", action="/board/login", next=_safe_next(next_url), error=error)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _login_page(request, request.query_params.get("next", "/board"))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Sign in by a form (never `?key=`): the key is checked, the browser gets a signed session cookie
    for the board's paths only, and goes to `next`. Refused unless sent from this API's own page (a
    cross-site form would sign a victim in as the attacker)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key, next_url = form.get("key", [""])[0].strip(), form.get("next", ["/board"])[0]
    lang = pick_lang(None, request.headers.get("accept-language"))
    if not same_origin({k.lower(): v for k, v in request.headers.raw}):
        return _login_page(request, next_url, WORDS["signin_cross_site"][lang], 403)
    if not key or principal_of(request, key) is None or key.startswith(sessions.PREFIX + "."):
        return _login_page(request, next_url, WORDS["signin_bad"][lang], 401)
    resp = RedirectResponse(_safe_next(next_url), status_code=303)
    _set_session(resp, request, key)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    resp = RedirectResponse("/board/login", status_code=303)
    resp.delete_cookie(KEY_COOKIE, path="/board")
    return resp


@router.get("", response_class=HTMLResponse)
async def board_page(request: Request) -> Response:
    here = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
    if "key" in request.query_params:  # a key in the URL is in the history: never accepted any more
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
        lang = pick_lang(request.query_params.get("lang"), request.headers.get("accept-language"))
        return _login_page(request, f"/board?{rest}" if rest else "/board", WORDS["signin_url_key"][lang], 400)
    try:
        require_read(request, None)
    except HTTPException as exc:
        if exc.status_code == 401:
            return _login_page(request, here, None, 401)
        return HTMLResponse(f"<p>{escape(str(exc.detail))}</p>", status_code=exc.status_code)
    cfg = config_of(request)
    stream = f"{request.url.path}/stream?{request.url.query}" if request.url.query else f"{request.url.path}/stream"
    who = principal_of(request, token_of(request))
    html = board_of(request).page(cfg, stream_url=stream, static=f"{request.url.path}/static",
                                  can_ack=who is not None and who.can("admin"))
    return _renewed(HTMLResponse(html, headers={"Cache-Control": "no-store"}), request)


@router.get("/stream")
async def board_stream(request: Request, _who: ReadDep) -> EventSourceResponse:
    """The board's sections: all of them on connect, then each one again when it changes."""
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
