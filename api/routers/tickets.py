"""GET /v1/tickets: the most urgent open tickets of a scope, from the view (the board's SLA list)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import ReadAuthenticated, ViewDep, require_scope
from stream.clock import rfc3339
from stream.kpis import TICKET_KINDS
from stream.scopes import kind_of
from stream.tickets import AT_RISK_SHARE, Ticket

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[ReadAuthenticated])
TicketState = Literal["open", "at_risk", "overdue"]


class OpenTicket(BaseModel):
    id: str
    team: str
    channel: str
    tier: str
    agent: str | None
    created_at: str
    age_s: float
    responded: bool = Field(description="has had a first response")
    due_at: str | None = Field(description="first-response due time; null once responded")
    due_in_s: float | None = Field(description="seconds until the due time (negative: overdue)")
    status: Literal["overdue", "at_risk", "waiting", "responded"]


class TicketsResponse(BaseModel):
    scope: str
    state: TicketState
    as_of: str
    total: int = Field(description="open tickets of the scope in that state (before limit)")
    tickets: list[OpenTicket]


def _status(t: Ticket, now: float) -> Literal["overdue", "at_risk", "waiting", "responded"]:
    if t.responded:
        return "responded"
    if t.due <= now:
        return "overdue"
    return "at_risk" if t.due - AT_RISK_SHARE * t.target_s <= now else "waiting"


@router.get("/tickets", response_model=TicketsResponse, responses={404: {"description": "unknown scope"},
                                                                    422: {"description": "a queue scope"}})
async def get_tickets(view: ViewDep, scope: str = Query("all", max_length=140), state: TicketState = "open",
                      limit: int = Query(20, ge=1, le=500)) -> TicketsResponse:
    """Open tickets, most urgent first: those awaiting a first response by due time, then the others
    by age. `at_risk` lists the at-risk and overdue ones; `overdue` only those past due."""
    now = time.time()
    if kind_of(scope) not in TICKET_KINDS:
        raise HTTPException(422, f"tickets have no {kind_of(scope)} scope")
    require_scope(view, scope, now=now)
    lc = view.live_of(scope, now=now)
    total = {"open": lc.backlog, "at_risk": lc.at_risk + lc.overdue, "overdue": lc.overdue}[state]
    rows = [OpenTicket(id=tid, team=t.team, channel=t.channel, tier=t.tier, agent=t.agent,
                       created_at=rfc3339(t.created_at), age_s=max(0.0, now - t.created_at), responded=t.responded,
                       due_at=None if t.responded else rfc3339(t.due),
                       due_in_s=None if t.responded else t.due - now, status=_status(t, now))
            for tid, t in view.urgent_tickets(scope, state, now=now, limit=limit)]
    return TicketsResponse(scope=scope, state=state, as_of=rfc3339(now), total=total, tickets=rows)
