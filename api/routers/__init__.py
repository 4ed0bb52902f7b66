"""Routers per resource, collected in `ROUTERS`."""

from api.routers import alerting, events, health, kpis, tickets

ROUTERS = (kpis.router, tickets.router, events.router, alerting.router, health.router)
