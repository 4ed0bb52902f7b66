"""POST /v1/events: contract events over HTTP for producers that cannot speak Kafka."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from api.deps import IngestAuthenticated, IngestMetricsDep, ProducerDep, SettingsDep
from api.schemas import IngestResponse, Rejection
from stream.clock import utcnow
from stream.events import Rejected, key_of, topic_kind_of, validate

router = APIRouter(prefix="/v1", tags=["ingest"])
MAX_BODY = 10 * 1024 * 1024
MAX_EVENTS = 5000


@router.post("/events", status_code=202, response_model=IngestResponse, dependencies=[IngestAuthenticated],
             responses={401: {"description": "missing or wrong bearer token"},
                        413: {"description": "body too large"}, 422: {"description": "no valid event"}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}}}})
async def post_events(request: Request, settings: SettingsDep, producer: ProducerDep,
                      metrics: IngestMetricsDep) -> Any:
    """Validate each event against the contract; produce the valid ones to their topic (202).

    The body is one event object or an array of them. Rejected events are listed with the reason and
    are not produced; they are counted in `sqm_ingest_rejected_total{reason}`.
    """
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {MAX_BODY} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(422, f"body is not JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_EVENTS:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_EVENTS} events per call")
    now = utcnow()
    rejected: list[Rejection] = []
    futures = []
    for i, obj in enumerate(items):
        raw = orjson.dumps(obj)
        res = Rejected("oversize", f"{len(raw)} bytes") if len(raw) > 64 * 1024 else validate(
            obj, now=now, state_map=settings.agent_state_map)
        if isinstance(res, Rejected):
            rejected.append(Rejection(index=i, reason=res.reason, detail=res.detail))
            metrics.rejected.labels(res.reason).inc()
            continue
        topic = settings.topic(topic_kind_of(res))
        futures.append(await producer.send(topic, key=key_of(res).encode(), value=raw))
    for f in futures:
        await f
    metrics.accepted.inc(len(futures))
    out = IngestResponse(accepted=len(futures), rejected=rejected)
    code = 202 if futures or not items else 422
    return JSONResponse(out.model_dump(), status_code=code, headers={"X-Ingest-Time": f"{time.time():.3f}"})
