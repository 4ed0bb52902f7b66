"""Dependencies, one per resource, so that a route's signature says what it uses.

    @router.get("/v1/kpis")
    async def get_kpis(view: ViewDep, targets: TargetsDep, ...) -> ...

Resources live on `app.state` under the names below: `create_app` puts the in-memory ones there, the
lifespan the connected ones (database, producer). A connected resource that is missing (a unit
test without a broker, a database not reached yet) answers 503 with what is missing and
Retry-After; so does a route whose database call fails because the database is down
(`DATABASE_DOWN`, turned into a 503 by the handler in api/app.py).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar, cast

from aiokafka import AIOKafkaProducer
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from alerts.history import AlertRepository
from alerts.rulebook import Rulebook
from api import sessions
from api.feed import StateFeed
from api.history_reads import HistoryReads
from api.keys import LEVEL, Principal, Role
from api.metrics import IngestMetrics
from api.sessions import hash_key
from api.snapshots import PeriodicSnapshot
from api.targets import TargetBook, Targets
from history.store import HistoryStore
from services.config import Settings
from stream.view import View

T = TypeVar("T")
# What a database call raises when the database is down or unreachable (refused, shut down, pool
# exhausted, SQLite locked): a 503 to retry, never a 500.
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_S = 5


def unavailable(detail: str, retry_after_s: float = RETRY_AFTER_S) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail,
                         headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


@dataclass
class DatabaseStatus:
    """How the API stands with its database until it is connected (its resources are then on
    `app.state`): the routes that need it say why they cannot answer."""

    connecting: bool = False  # False: this app runs without a database (unit tests)
    since: float = 0.0  # when the first attempt failed
    retry_s: float = RETRY_AFTER_S  # the wait before the next attempt

    def refusal(self) -> HTTPException:
        if not self.connecting:
            return unavailable("database not connected")
        since = time.strftime("%H:%M:%S UTC", time.gmtime(self.since)) if self.since else "start"
        return unavailable(f"the database is unavailable: not connected since {since}, retrying every "
                           f"{self.retry_s:.0f} s", self.retry_s)


def _state(request: Request, name: str, kind: type[T], missing: str | None = None) -> T:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise unavailable(missing or f"{name} not available")
    assert isinstance(value, kind), f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}"
    return value


def _database_state(request: Request, name: str, kind: type[T]) -> T:
    """A resource that exists once the database is connected; until then a 503 that says why."""
    if getattr(request.app.state, name, None) is None:
        db = getattr(request.app.state, "database", None)
        raise db.refusal() if isinstance(db, DatabaseStatus) else unavailable("database not connected")
    return _state(request, name, kind)


def get_settings(request: Request) -> Settings:
    return _state(request, "settings", Settings)


def get_view(request: Request) -> View:
    return _state(request, "view", View)


def get_feed(request: Request) -> StateFeed:
    return _state(request, "feed", StateFeed)


def get_targets(request: Request) -> Targets:
    """The targets as last read (file and API targets; refreshed in the background)."""
    snap = _state(request, "targets", PeriodicSnapshot)
    return cast(Targets, snap.value)


def get_target_snapshot(request: Request) -> PeriodicSnapshot[Targets]:
    return cast(PeriodicSnapshot[Targets], _state(request, "targets", PeriodicSnapshot))


def get_target_book(request: Request) -> TargetBook:
    return _database_state(request, "target_book", TargetBook)


def find_kpi_history(request: Request) -> HistoryStore | None:
    """The KPI history if the database is connected (routes that use it for extras only)."""
    value = getattr(request.app.state, "kpi_history", None)
    return value if isinstance(value, HistoryStore) else None


def get_kpi_history(request: Request) -> HistoryStore:
    return _database_state(request, "kpi_history", HistoryStore)


def get_history_reads(request: Request) -> HistoryReads:
    return _state(request, "history_reads", HistoryReads)


def get_ingest_metrics(request: Request) -> IngestMetrics:
    return _state(request, "ingest_metrics", IngestMetrics)


def get_producer(request: Request) -> AIOKafkaProducer:
    return _state(request, "producer", AIOKafkaProducer, "broker not connected")


def find_db(request: Request) -> Engine | None:
    """The database if connected (for readiness, which reports rather than refuses)."""
    return getattr(request.app.state, "db", None)


def get_rulebook(request: Request) -> Rulebook:
    return _database_state(request, "rulebook", Rulebook)


def get_history(request: Request) -> AlertRepository:
    return _database_state(request, "history", AlertRepository)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ViewDep = Annotated[View, Depends(get_view)]
FeedDep = Annotated[StateFeed, Depends(get_feed)]
TargetsDep = Annotated[Targets, Depends(get_targets)]
TargetSnapshotDep = Annotated[PeriodicSnapshot[Targets], Depends(get_target_snapshot)]
TargetBookDep = Annotated[TargetBook, Depends(get_target_book)]
KpiHistoryDep = Annotated[HistoryStore, Depends(get_kpi_history)]
MaybeKpiHistoryDep = Annotated[HistoryStore | None, Depends(find_kpi_history)]
HistoryReadsDep = Annotated[HistoryReads, Depends(get_history_reads)]
IngestMetricsDep = Annotated[IngestMetrics, Depends(get_ingest_metrics)]
ProducerDep = Annotated[AIOKafkaProducer, Depends(get_producer)]
MaybeDbDep = Annotated[Engine | None, Depends(find_db)]
RulebookDep = Annotated[Rulebook, Depends(get_rulebook)]
HistoryDep = Annotated[AlertRepository, Depends(get_history)]


# -- authentication ------------------------------------------------------------------------------
KEY_COOKIE = "sqm_session"  # set by POST /board/login: a signed session (api/sessions.py), not the key
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
_TOKENS: tuple[tuple[str, Role], ...] = (("admin_token", "admin"), ("ingest_token", "ingest"))
TOKEN_PRINCIPAL = "token"  # who SQM_ADMIN_TOKEN and SQM_INGEST_TOKEN are (in acknowledgements, for instance)


def _keys(request: Request) -> dict[str, Principal]:
    snap = getattr(request.app.state, "keys", None)
    return snap.value if isinstance(snap, PeriodicSnapshot) else {}


def _keys_known(request: Request) -> bool:
    """Whether the API keys have been read (not yet while the database has been down since start)."""
    snap = getattr(request.app.state, "keys", None)
    return not isinstance(snap, PeriodicSnapshot) or snap.loaded


def principal_of(request: Request, token: str | None) -> Principal | None:
    """The principal a token stands for: SQM_ADMIN_TOKEN, SQM_INGEST_TOKEN or an API key."""
    if not token:
        return None
    settings = get_settings(request)
    if token.startswith(sessions.PREFIX + "."):  # the board's sign-in cookie: a key's fingerprint
        fingerprint = sessions.verify(token, session_secret(request), time.time())
        if fingerprint is None:
            return None
        for attr, role in _TOKENS:
            configured = getattr(settings, attr)
            if configured and secrets.compare_digest(fingerprint, hash_key(configured)):
                return Principal(TOKEN_PRINCIPAL, role)
        return _keys(request).get(fingerprint)
    for attr, role in _TOKENS:
        configured = getattr(settings, attr)
        if configured and secrets.compare_digest(token.encode(), configured.encode()):
            return Principal(TOKEN_PRINCIPAL, role)
    return _keys(request).get(hash_key(token))


def session_secret(request: Request) -> bytes:
    """SQM_SESSION_SECRET, or the process's own random one (app.state.session_secret)."""
    return cast(bytes, request.app.state.session_secret)


def identities(request: Request) -> tuple[str, str | None]:
    """Whom the limits count a request against: its client address, and its key or token if valid."""
    who = principal_of(request, token_of(request))
    client = request.client
    return f"address {client.host if client else 'unknown'}", (f"key {who.name} ({who.role})" if who else None)


def token_of(request: Request, creds: HTTPAuthorizationCredentials | None = None) -> str | None:
    """The bearer token of the request, else, on the board's paths, the board's key cookie."""
    if creds is None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
    if creds is not None:
        return creds.credentials
    if not request.url.path.startswith("/board"):
        return None  # the cookie is the board's only
    cookie = request.cookies.get(KEY_COOKIE)
    return cookie if cookie and cookie.startswith(sessions.PREFIX + ".") else None  # a session, never a raw key


def _require(role: Role) -> Callable[[Request, HTTPAuthorizationCredentials | None], Principal]:
    def check(request: Request, creds: Credentials) -> Principal:
        token = token_of(request, creds)
        who = principal_of(request, token)
        settings = get_settings(request)
        if role == "read" and settings.read_auth == "open":
            return who or Principal("anonymous", "read")
        if who is not None and who.can(role):
            return who
        possible = any(getattr(settings, a) and LEVEL[r] >= LEVEL[role] for a, r in _TOKENS) or any(
            p.can(role) for p in _keys(request).values())
        if ((who is None and token) or not possible) and not _keys_known(request):
            raise unavailable("API keys cannot be checked yet: they are read from the database, which is "
                              "unavailable (the tokens SQM_ADMIN_TOKEN and SQM_INGEST_TOKEN work)")
        if not possible:
            token = {"admin": "set SQM_ADMIN_TOKEN or ", "ingest": "set SQM_INGEST_TOKEN or "}.get(role, "")
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"no {role} access is configured: {token}create a key "
                                f"(python -m services.keys create NAME --role {role})")
        if who is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"a key with the role {role} (or a token) is required",
                                headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key has the role {who.role}; {role} is required")

    return check


require_read = _require("read")
require_ingest = _require("ingest")
require_admin = _require("admin")
ReadDep = Annotated[Principal, Depends(require_read)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ReadAuthenticated = Depends(require_read)
IngestAuthenticated = Depends(require_ingest)
AdminAuthenticated = Depends(require_admin)


def require_scope(view: View, scope: str, *, now: float) -> None:
    """404 for a scope the view has nothing of (the same answer in every router)."""
    if not view.has_scope(scope, now=now):
        raise HTTPException(404, f"unknown scope {scope!r}: see GET /v1/scopes")
