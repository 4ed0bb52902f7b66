"""Response and request bodies of the HTTP API (the shapes of interfaces.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Window = Literal["5m", "15m", "1h", "24h"]


class KpiValue(BaseModel):
    value: float | None = Field(description="null when the denominator is zero")
    count: int = Field(description="the denominator (or the count, for counts)")
    target: float | None = Field(None, description="configured target for this KPI in this scope")
    achievement: float | None = Field(None, description="actual/target, or target/actual when lower is better")


class KpisResponse(BaseModel):
    scope: str
    window: Window
    as_of: str = Field(description="RFC 3339 time the figures were computed at")
    kpis: dict[str, KpiValue]


class ScopesResponse(BaseModel):
    scopes: list[str]


class Rejection(BaseModel):
    index: int
    reason: str
    detail: str


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[Rejection]


class ReadyResponse(BaseModel):
    ready: bool
    checks: dict[str, bool]
    detail: dict[str, str | int | float | list[int]]
