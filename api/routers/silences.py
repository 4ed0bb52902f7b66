"""Silences: GET, POST /v1/silences, DELETE /v1/silences/{id} (docs/api.md "Silences"). Writes need the
admin role.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from alerts.history import (
    Conflict,
    NotFound,
    SilenceView,
)
from alerts.routing import Matcher
from api.deps import (
    AdminAuthenticated,
    HistoryDep,
    ReadAuthenticated,
)
from stream.clock import aware, rfc3339_opt, utcnow

router = APIRouter(prefix="/v1", tags=["silences"], dependencies=[ReadAuthenticated])


class SilenceIn(BaseModel):
    matchers: list[Matcher] = Field(min_length=1, description="all must match the alert's labels")
    starts_at: datetime | None = Field(None, description="default: now")
    ends_at: datetime
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000, description="why")


class MatcherOut(BaseModel):
    """A silence's matcher as stored (not checked again: one saved before a check existed is listed)."""

    name: str
    value: str
    op: Literal["=", "!=", "=~", "!~"]


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherOut]
    starts_at: str | None
    ends_at: str | None
    created_by: str
    comment: str
    status: Literal["pending", "active", "expired"]
    matching_alerts: int = Field(description="pending or firing alerts it silences now")


def _silence_out(v: SilenceView) -> SilenceOut:
    return SilenceOut(id=v.id, matchers=[MatcherOut(name=m.name, value=m.value, op=m.op) for m in v.matchers],
                      starts_at=rfc3339_opt(v.starts_at), ends_at=rfc3339_opt(v.ends_at), created_by=v.created_by,
                      comment=v.comment, status=v.status, matching_alerts=v.matching_alerts)


@router.get("/silences", response_model=list[SilenceOut])
def list_silences(history: HistoryDep, include_expired: bool = False) -> list[SilenceOut]:
    return [_silence_out(v) for v in history.silences(utcnow(), include_expired=include_expired)]


@router.post("/silences", status_code=201, response_model=SilenceOut, dependencies=[AdminAuthenticated],
             responses={422: {}})
def create_silence(body: SilenceIn, history: HistoryDep) -> SilenceOut:
    """Silence alerts whose labels match every matcher, until `ends_at`. Silenced alerts are still
    recorded (history, GET /v1/alerts with `silenced_by`) but not delivered."""
    now = utcnow()
    try:
        return _silence_out(history.add_silence(
            matchers=body.matchers, starts_at=aware(body.starts_at) if body.starts_at else now,
            ends_at=aware(body.ends_at), created_by=body.created_by, comment=body.comment, now=now))
    except Conflict as exc:
        raise HTTPException(422, str(exc)) from exc


@router.delete("/silences/{silence_id}", status_code=204, dependencies=[AdminAuthenticated], responses={404: {}},
               response_class=Response)
def expire_silence(silence_id: str, history: HistoryDep) -> Response:
    try:
        history.expire_silence(silence_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(status_code=204)
