"""Routers per resource, collected in `ROUTERS`."""

from api.routers import agents, alerts, events, health, kpis, notifications, rules, silences, targets, tickets, voice

ROUTERS = (kpis.router, tickets.router, agents.router, voice.router, targets.router, events.router, rules.router,
           alerts.router, silences.router, notifications.router, health.router)
