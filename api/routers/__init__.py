"""Routers per resource, collected in `ROUTERS`."""

from api.routers import agents, alerting, events, health, kpis, targets, tickets, voice

ROUTERS = (kpis.router, tickets.router, agents.router, voice.router, targets.router, events.router,
           alerting.router, health.router)
