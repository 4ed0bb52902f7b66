"""GET /healthz (the process lives) and GET /readyz (broker reachable, workers assigned, view warm)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import RuntimeDep
from api.schemas import ReadyResponse

router = APIRouter(tags=["health"])
HEARTBEAT_FRESH_S = 20.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def database_ok(rt: RuntimeDep) -> bool:
    if rt.db is None:
        return False
    try:
        with rt.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


def readiness(rt: RuntimeDep, db_ok: bool) -> ReadyResponse:
    now = time.time()
    feed = rt.feed
    live = {w: hb for w, hb in rt.view.workers.items() if now - float(hb.get("ts", 0)) < HEARTBEAT_FRESH_S}
    assigned = sorted({p for hb in live.values() for p in hb.get("assigned", [])})
    checks = {
        "broker": feed is not None and now - feed.last_poll_ok < 5.0,
        "database": db_ok,
        "worker_assigned": len(assigned) >= rt.settings.partitions,
        "view_warm": feed is not None and feed.warm,
    }
    return ReadyResponse(ready=all(checks.values()), checks=checks,
                         detail={"workers": len(live), "assigned_partitions": assigned,
                                 "state_records": rt.view.records})


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(rt: RuntimeDep) -> JSONResponse:
    r = readiness(rt, await asyncio.to_thread(database_ok, rt))
    return JSONResponse(r.model_dump(), status_code=200 if r.ready else 503)
