"""Dependencies: the app's runtime objects, reached through `request.app.state`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from alerts.rulebook import Rulebook
from api.feed import StateFeed
from services.config import Settings
from stream.view import View


@dataclass
class Runtime:
    settings: Settings
    view: View
    targets: dict[tuple[str, str], float]
    registry: CollectorRegistry
    producer: AIOKafkaProducer | None = None
    feed: StateFeed | None = None
    db: Engine | None = None
    rulebook: Rulebook | None = None
    extra: dict[str, object] = field(default_factory=dict)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
_bearer = HTTPBearer(auto_error=False)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _check_bearer(token: str | None, creds: HTTPAuthorizationCredentials | None, off: str) -> None:
    """503 with `off` when the token is not configured, 401 unless the request carries it."""
    if token is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, off)
    if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required",
                            headers={"WWW-Authenticate": "Bearer"})


def require_token(rt: RuntimeDep, creds: Credentials) -> None:
    _check_bearer(rt.settings.ingest_token, creds, "ingest is off: set SQM_INGEST_TOKEN")


Authenticated = Depends(require_token)


def require_admin(rt: RuntimeDep, creds: Credentials) -> None:
    """Writes to rules, acknowledgements and silences."""
    _check_bearer(rt.settings.admin_token, creds, "writes are off: set SQM_ADMIN_TOKEN")


AdminAuthenticated = Depends(require_admin)
