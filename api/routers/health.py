"""GET /healthz (the process lives) and GET /readyz (broker reachable, workers assigned, view warm)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.deps import FeedDep, MaybeDbDep, SettingsDep, ViewDep
from api.feed import StateFeed
from api.schemas import ReadyResponse
from stream.view import View

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def database_ok(db: Engine | None) -> bool:
    if db is None:
        return False
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def readiness(view: View, feed: StateFeed, partitions: int, db_ok: bool, *, now: float) -> ReadyResponse:
    live = {w: hb for w, hb in view.workers.items() if hb.is_fresh(now)}
    assigned = sorted({p for hb in live.values() for p in hb.assigned})
    checks = {
        "broker": now - feed.last_poll_ok < 5.0,
        "database": db_ok,
        "worker_assigned": len(assigned) >= partitions,
        "view_warm": feed.warm,
    }
    return ReadyResponse(ready=all(checks.values()), checks=checks,
                         detail={"workers": len(live), "assigned_partitions": assigned,
                                 "state_records": view.records})


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(view: ViewDep, feed: FeedDep, settings: SettingsDep, db: MaybeDbDep) -> JSONResponse:
    db_ok = await asyncio.to_thread(database_ok, db)
    r = readiness(view, feed, settings.partitions, db_ok, now=time.time())
    return JSONResponse(r.model_dump(), status_code=200 if r.ready else 503)
