"""GET /v1/agents, /v1/staffing and /v1/forecast: the workforce figures (docs/workforce.md)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api.deps import ReadAuthenticated, ViewDep, require_scope
from api.forecasts import KINDS, kpis_of
from stream.agents import TIME_FIELD
from stream.clock import rfc3339
from stream.events import AgentStateName
from stream.folds import IX
from stream.kpis import AGENT_KINDS, KPI_BY_NAME
from stream.scopes import kind_of

router = APIRouter(prefix="/v1", tags=["workforce"], dependencies=[ReadAuthenticated])


class AgentNow(BaseModel):
    agent: str
    team: str
    state: AgentStateName
    reason: str | None
    since: str = Field(description="RFC 3339 UTC: when the agent entered this state (and reason)")
    in_state_s: float = Field(description="seconds in this state, now")
    queues: list[str]
    occupancy: float | None = Field(None, description="with `window`: the agent's occupancy over it")
    away_share: float | None = Field(None, description="with `window`: the agent's time away over time logged in")
    time_in_state_s: dict[str, float] | None = Field(
        None, description="with `window`: seconds in each state over it (available, on_contact, "
        "after_contact_work, away), the current state up to now")


class AgentsResponse(BaseModel):
    scope: str
    as_of: str
    window: str | None = None
    agents: list[AgentNow]


@router.get("/agents", response_model=AgentsResponse,
            responses={404: {"description": "unknown scope"}, 422: {"description": "a scope agents do not count in"}})
async def get_agents(view: ViewDep, scope: str = Query("all", max_length=140),
                     state: list[AgentStateName] | None = Query(None, description="only these states (repeatable)"),
                     window: Literal["5m", "15m", "1h", "24h"] | None = Query(
                         None, description="add each agent's occupancy, away share and time per state over it"),
                     ) -> AgentsResponse:
    """The agents of `all`, a `team:`, a `queue:` (those who serve it) or one `agent:`, by name, offline
    ones included with state `offline` until they leave the live state (the agent horizon); with
    `window`, each with its time in state over it (docs/workforce.md "Time in state")."""
    now = time.time()
    if kind_of(scope) not in AGENT_KINDS | {"agent"}:
        raise HTTPException(422, f"agents do not count in {kind_of(scope)} scopes")
    require_scope(view, scope, now=now)
    wanted = set(state) if state else None
    rows = []
    for name, a in view.agent_list(scope):
        if wanted is not None and a.state not in wanted:
            continue
        row = AgentNow(agent=name, team=a.team, state=a.state, reason=a.reason, since=rfc3339(a.since),
                       in_state_s=max(0.0, now - a.since), queues=list(a.queues))
        if window is not None:
            acc = view.window_acc(f"agent:{name}", window, now=now)
            row.occupancy = KPI_BY_NAME["occupancy"].compute(acc)[0]
            row.away_share = KPI_BY_NAME["away_share"].compute(acc)[0]
            row.time_in_state_s = {st: acc.v[IX[f]] for st, f in TIME_FIELD.items()}
        rows.append(row)
    return AgentsResponse(scope=scope, as_of=rfc3339(now), window=window, agents=rows)


class QueueStaffing(BaseModel):
    scope: str
    traffic_erlangs: float = Field(description="A = λ·h")
    required_agents: int = Field(description="smallest N > A whose Erlang C service level meets the target")
    agents_staffed: int
    agents_away: int
    staffing_gap: int = Field(description="agents_staffed − agents_away − required_agents (negative: short)")
    predicted_service_level: float | None = Field(description="SL with the agents staffed minus away; null "
                                                  "without traffic")
    calls_offered_15m: int
    lambda_per_s: float = Field(description="calls_offered over 15m / 900 s")
    handle_time_s: float = Field(description="aht_s over 1h (the default handle time without call.ended)")
    threshold_s: float = Field(description="the queue's service-level threshold T")
    target: float = Field(description="the queue's service-level target SL*")


class StaffingResponse(BaseModel):
    as_of: str
    queues: list[QueueStaffing]


@router.get("/staffing", response_model=StaffingResponse, responses={404: {"description": "unknown scope"},
                                                                      422: {"description": "not a queue scope"}})
async def get_staffing(view: ViewDep, scope: str | None = Query(None, max_length=140,
                                                                 description="one queue:; every queue without")
                       ) -> StaffingResponse:
    """Erlang C per queue (docs/workforce.md), with the inputs it used."""
    now = time.time()
    if scope is not None and kind_of(scope) != "queue":
        raise HTTPException(422, "staffing is per queue: scope=queue:<name>")
    if scope is not None:
        require_scope(view, scope, now=now)
    scopes = [scope] if scope is not None else [s for s in view.scopes(now=now) if kind_of(s) == "queue"]
    out = []
    for s in scopes:
        st, offered = view.staffing(s, now=now)
        ac = view.agents_of(s)
        out.append(QueueStaffing(scope=s, traffic_erlangs=st.traffic_erlangs, required_agents=st.required_agents,
                                 agents_staffed=ac.staffed, agents_away=ac.by_state.get("away", 0),
                                 staffing_gap=st.staffing_gap, predicted_service_level=st.predicted_service_level,
                                 calls_offered_15m=offered, lambda_per_s=st.lambda_per_s,
                                 handle_time_s=st.handle_time_s, threshold_s=st.threshold_s, target=st.target))
    return StaffingResponse(as_of=rfc3339(now), queues=out)


class ForecastInterval(BaseModel):
    start: str = Field(description="RFC 3339 UTC start of the quarter hour")
    expected: float | None = Field(description="the forecast count (past intervals: made one interval before)")
    low: float | None = Field(description="80 % prediction interval, low end")
    high: float | None = Field(description="80 % prediction interval, high end")
    actual: float | None = Field(description="the count; the current interval so far; null for the future")
    required_agents: int | None = Field(description="queues: Erlang C's agents for `expected` at the current "
                                        "handle time")
    future: bool


class ForecastResponse(BaseModel):
    scope: str
    kpi: Literal["calls_offered", "tickets_created"]
    step: Literal["15m"] = "15m"
    as_of: str = Field(description="when the forecast was made (it is remade every minute)")
    method: str = Field(description="profile (four weeks of history or more), daily (a day), flat (less)")
    intervals: list[ForecastInterval]
    wape_24h: float | None = Field(description="Σ|actual − expected| / Σ actual over the past intervals listed")


@router.get("/forecast", response_model=ForecastResponse,
            responses={404: {"description": "unknown scope, or no forecast made yet"},
                       422: {"description": "not an all, team: or queue: scope, or no such KPI for it"}})
async def get_forecast(request: Request, view: ViewDep,
                       scope: str = Query("all", max_length=140, description="all, team:<name> or queue:<name>"),
                       kpi: Literal["calls_offered", "tickets_created"] = Query("calls_offered")
                       ) -> ForecastResponse:
    """The next 8 quarter hours of a scope's calls or tickets, and the past 24 h with their actual and
    the forecast made for them (docs/workforce.md "Forecast")."""
    now = time.time()
    if kind_of(scope) not in KINDS:
        raise HTTPException(422, "forecasts are per all, team: and queue: scope")
    if kpi not in kpis_of(scope):
        raise HTTPException(422, f"{kpi} is not forecast for {kind_of(scope)} scopes (tickets have no queue)")
    require_scope(view, scope, now=now)
    made = request.app.state.forecaster.answer(scope, kpi)
    if made is None:
        raise HTTPException(404, "no forecast made yet for this scope (the forecaster runs every minute "
                                 "once the database is connected)")
    return ForecastResponse(scope=scope, kpi=kpi, as_of=rfc3339(made.made), method=made.method,
                            wape_24h=made.wape_24h,
                            intervals=[ForecastInterval(start=rfc3339(i.start), expected=i.expected, low=i.low,
                                                        high=i.high, actual=i.actual, future=i.start > made.made,
                                                        required_agents=i.required_agents)
                                       for i in made.intervals])
