"""Routers per resource, collected in `ROUTERS`."""

from api.routers import events, health, kpis

ROUTERS = (kpis.router, events.router, health.router)
