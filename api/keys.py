"""API keys: created, listed and revoked by `python -m services.keys`; stored as SHA-256 hashes.

A key looks like `sqm_<id>_<secret>`: the id is public (listing, revoking), the secret is shown
once at creation. Roles are ordered, each including the ones before it: `read` (KPIs, board,
alerts), `ingest` (POST /v1/events), `admin` (rules, targets, acknowledgements, silences).

    store = KeyStore(engine)
    key = store.create("wall-screen-3", "read")      # the only time the secret is seen
    store.snapshot()                                  # hash -> Principal, for the API's memory
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.sessions import hash_key
from db.schema import ApiKeyRow
from stream.clock import utcnow

Role = Literal["read", "ingest", "admin"]
ROLES: tuple[Role, ...] = ("read", "ingest", "admin")
LEVEL = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """Who a request is: a key's name (or the token variable's) and its role."""

    name: str
    role: Role

    def can(self, role: Role) -> bool:
        return LEVEL[self.role] >= LEVEL[role]


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: Role) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(4)
        key = f"sqm_{key_id}_{secrets.token_urlsafe(24)}"
        with Session(self.engine) as s, s.begin():
            s.add(ApiKeyRow(id=key_id, name=name, role=role, hash=hash_key(key), created_at=utcnow()))
        return key

    def list(self) -> list[KeyInfo]:
        with Session(self.engine) as s:
            return [KeyInfo(r.id, r.name, r.role, r.created_at, r.revoked_at)
                    for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke(self, key_id: str) -> bool:
        with Session(self.engine) as s, s.begin():
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            return True

    def snapshot(self) -> dict[str, Principal]:
        """hash -> principal of every key not revoked."""
        with Session(self.engine) as s:
            return {r.hash: Principal(r.name, r.role)  # type: ignore[arg-type]
                    for r in s.scalars(select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None)))}
