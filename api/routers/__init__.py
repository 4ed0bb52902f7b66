"""Routers per resource, collected in `ROUTERS`."""

from api.routers import alerting, events, health, kpis

ROUTERS = (kpis.router, events.router, alerting.router, health.router)
