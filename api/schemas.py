"""Response and request bodies of the HTTP API (the shapes docs/api.md describes)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Window = Literal["5m", "15m", "1h", "24h"]


class KpiValue(BaseModel):
    value: float | None = Field(description="null when the denominator is zero")
    count: int = Field(description="the denominator (or the count, for counts)")
    target: float | None = Field(None, description="configured target for this KPI in this scope")
    achievement: float | None = Field(None, description="actual/target, or target/actual when lower is better")
    previous: float | None = Field(None, description="with `compare`: the same window one day / one week "
                                   "earlier, from the history (null: no data then, or a live-state KPI)")
    previous_count: int | None = Field(None, description="with `compare`: the denominator of `previous`")
    change: float | None = Field(None, description="with `compare`: value - previous")


class HistoryPoint(BaseModel):
    t: str = Field(description="start of the step (RFC 3339)")
    value: float | None
    count: int


class HistoryResponse(BaseModel):
    scope: str
    kpi: str
    step: str
    points: list[HistoryPoint]


class Ranked(BaseModel):
    scope: str
    name: str
    value: float | None
    count: int
    target: float | None
    achievement: float | None
    rank: int = Field(description="1 = best (ties share a rank)")
    previous: float | None = Field(description="the previous period: the same window just before this one")
    change: float | None = Field(description="value - previous")


class RankingsResponse(BaseModel):
    kind: str
    kpi: str
    window: Window
    as_of: str
    rankings: list[Ranked]


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
