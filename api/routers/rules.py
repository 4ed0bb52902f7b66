"""Alert rules: GET, POST, PUT, DELETE /v1/rules (docs/api.md "Rules"). The database keeps them, and
every change is published to the compacted rules topic, which the workers follow. Writes need the admin role.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from alerts.feed import publish_rule
from alerts.rulebook import Rulebook, RuleRefused
from api.deps import (
    AdminAuthenticated,
    ProducerDep,
    ReadAuthenticated,
    RulebookDep,
    SettingsDep,
)
from services.config import Settings

router = APIRouter(prefix="/v1", tags=["rules"], dependencies=[ReadAuthenticated])


def _refused(exc: RuleRefused) -> JSONResponse:
    return JSONResponse({"detail": exc.errors}, status_code=exc.status)


class RuleOut(BaseModel):
    source: Literal["file", "api"] = Field(description="file rules are read-only over the API")
    rule: dict[str, Any]


class RulesOut(BaseModel):
    rules: list[RuleOut]
    errors: list[dict[str, Any]] = Field(description="rules refused (file or database), with where and what")


RuleBody = Annotated[dict[str, Any], Body(examples=[{
    "id": "billing-sl", "kpi": "service_level", "scope": "team:billing", "window": "15m", "op": "<",
    "warning": 0.8, "critical": 0.6, "for": "1m", "clear_margin": 0.05, "min_count": 20,
    "labels": {"audience": "on-call"}, "intervention": "Open the overflow queue."}])]


@router.get("/rules", response_model=RulesOut)
def list_rules(book: RulebookDep) -> RulesOut:
    rules, errors = book.snapshot()
    return RulesOut(rules=[RuleOut(source=s, rule=r.to_doc()) for r, s in rules],
                    errors=[e.model_dump() for e in errors])


@router.get("/rules/{rule_id}", response_model=RuleOut, responses={404: {}})
def get_rule(rule_id: str, book: RulebookDep) -> RuleOut:
    found = book.get(rule_id)
    if found is None:
        raise HTTPException(404, f"no rule {rule_id!r}")
    return RuleOut(source=found[1], rule=found[0].to_doc())


async def _publish(book: Rulebook, producer: Any, settings: Settings, rule_id: str) -> None:
    """Publish the rule as it now stands (None: deleted) to the rules topic the workers follow."""
    found = await asyncio.to_thread(book.get, rule_id)
    await publish_rule(producer, settings.rules_topic, rule_id, found[0] if found else None)


@router.post("/rules", status_code=201, response_model=RuleOut, dependencies=[AdminAuthenticated],
             responses={409: {}, 422: {"description": "what is wrong, field by field"}})
async def create_rule(doc: RuleBody, book: RulebookDep, producer: ProducerDep, settings: SettingsDep,
                      by: str | None = None) -> Any:
    try:
        rule = await asyncio.to_thread(book.create, doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.put("/rules/{rule_id}", response_model=RuleOut, dependencies=[AdminAuthenticated],
            responses={404: {}, 409: {}, 422: {}})
async def replace_rule(rule_id: str, doc: RuleBody, book: RulebookDep, producer: ProducerDep,
                       settings: SettingsDep, by: str | None = None) -> Any:
    try:
        rule = await asyncio.to_thread(book.replace, rule_id, doc, by)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule.id)
    return RuleOut(source="api", rule=rule.to_doc())


@router.delete("/rules/{rule_id}", status_code=204, dependencies=[AdminAuthenticated],
               responses={404: {}, 409: {}}, response_class=Response)
async def delete_rule(rule_id: str, book: RulebookDep, producer: ProducerDep, settings: SettingsDep) -> Response:
    try:
        await asyncio.to_thread(book.delete, rule_id)
    except RuleRefused as exc:
        return _refused(exc)
    await _publish(book, producer, settings, rule_id)
    return Response(status_code=204)
