"""GET/PUT/DELETE /v1/targets: KPI targets per scope (writes: admin). File targets are read-only."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from api.deps import AdminAuthenticated, ReadAuthenticated, TargetBookDep, TargetsDep, TargetSnapshotDep
from api.targets import KpiTarget, TargetRefused

router = APIRouter(prefix="/v1", tags=["targets"], dependencies=[ReadAuthenticated])


class TargetOut(KpiTarget):
    source: Literal["file", "api"]


class TargetsOut(BaseModel):
    targets: list[TargetOut]


@router.get("/targets", response_model=TargetsOut)
async def list_targets(targets: TargetsDep) -> TargetsOut:
    """Every target: the targets file's (`source: file`) and those set over the API. A `kind:*` scope
    is the default of every scope of that kind."""
    return TargetsOut(targets=[TargetOut(**t.model_dump(), source=src) for t, src in targets.all()])


@router.put("/targets", response_model=TargetOut, dependencies=[AdminAuthenticated],
            responses={409: {"description": "set in the targets file"}})
async def put_target(body: KpiTarget, book: TargetBookDep, snapshot: TargetSnapshotDep,
                     by: str | None = None) -> TargetOut:
    """Set the target of one KPI in one scope (or `kind:*`)."""
    try:
        await asyncio.to_thread(book.put, body, by)
    except TargetRefused as exc:
        raise HTTPException(exc.status, exc.detail) from exc
    await snapshot.refresh()
    return TargetOut(**body.model_dump(), source="api")


@router.delete("/targets", status_code=204, response_class=Response, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {"description": "set in the targets file"}})
async def delete_target(book: TargetBookDep, snapshot: TargetSnapshotDep, scope: str = Query(max_length=140),
                        kpi: str = Query(max_length=64)) -> Response:
    try:
        await asyncio.to_thread(book.delete, scope, kpi)
    except TargetRefused as exc:
        raise HTTPException(exc.status, exc.detail) from exc
    await snapshot.refresh()
    return Response(status_code=204)
