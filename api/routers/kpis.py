"""GET /v1/kpis and GET /v1/scopes: figures from the view, never from a database."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Query

from api.deps import TargetsDep, ViewDep
from api.schemas import KpisResponse, KpiValue, ScopesResponse, Window
from api.targets import Targets
from stream.clock import rfc3339
from stream.kpis import achievement
from stream.scopes import kind_of
from stream.view import View

router = APIRouter(prefix="/v1", tags=["kpis"])
# Handlers are `async def` on purpose: they then run on the event loop, like the feed that updates
# the view, and never see it half-updated (a sync handler would run in a thread pool).


def kpi_payload(view: View, targets: Targets, scope: str, window: str, now: float) -> dict[str, KpiValue]:
    out = {}
    for name, (value, count) in view.kpis(scope, window, now=now).items():
        target = targets.get((scope, name))
        out[name] = KpiValue(value=value, count=count, target=target,
                             achievement=achievement(name, value, target) if target is not None else None)
    return out


@router.get("/kpis", response_model=KpisResponse, responses={404: {"description": "unknown scope"}})
async def get_kpis(view: ViewDep, targets: TargetsDep, scope: str = Query("all", max_length=140),
                   window: Window = "1h") -> KpisResponse:
    """Every KPI of kpis.md for one scope and window, with its denominator (`count`)."""
    now = time.time()
    if not view.has_scope(scope, now=now):
        raise HTTPException(404, f"unknown scope {scope!r}: see GET /v1/scopes")
    return KpisResponse(scope=scope, window=window, as_of=rfc3339(now),
                        kpis=kpi_payload(view, targets, scope, window, now))


@router.get("/scopes", response_model=ScopesResponse)
async def get_scopes(view: ViewDep, kind: str | None = None) -> ScopesResponse:
    """The scopes that have data (in the last 24 h, or open tickets); `kind` filters (team, agent, ...)."""
    scopes = view.scopes(now=time.time())
    if kind:
        scopes = [s for s in scopes if kind_of(s) == kind]
    return ScopesResponse(scopes=scopes)
