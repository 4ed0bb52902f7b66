"""Routers per resource, collected in `ROUTERS`."""

from api.routers import agents, alerting, events, health, kpis, targets, tickets

ROUTERS = (kpis.router, tickets.router, agents.router, targets.router, events.router, alerting.router, health.router)
