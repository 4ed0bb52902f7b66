"""sqm / Agents: agent state and occupancy per team and queue, and per-agent KPIs (the busiest agents)."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .panels import (
    Column,
    Series,
    dashboard,
    datasource_variable,
    higher_is_better,
    job_variable,
    lower_is_better,
    scope_variable,
    table_panel,
    text_panel,
    timeseries_panel,
)
from .promql import RATE, count, gauge, kpi, per_minute, recorded, scoped

UID = "sqm-agents"
OPT_IN = ("Per-agent series (`agent:<name>`) are on /metrics for the busiest 100 agents of the last 24 h "
          "(`SQM_METRICS_AGENT_SCOPES=N` for another cap, 0 for none: about 240 series per agent, so weigh the "
          "cardinality before raising it). The team and queue panels need no agent series.")
FCR = higher_is_better(0.55, 0.70)
CSAT = higher_is_better(0.70, 0.85)
FR_SLA = higher_is_better(0.85, 0.95)


def build() -> dm.Dashboard:
    a = scoped("agent")
    b = dashboard(UID, "sqm / Agents", "Per-agent ticket and call handling, first-contact resolution and satisfaction. "
                  + OPT_IN, [datasource_variable(), job_variable(), scope_variable("team"), scope_variable("queue"),
                             scope_variable("agent")])
    b.add(text_panel("About agent scopes", OPT_IN + " The thresholds are those of the default alert rules "
                     "(`agent-fcr-low`: FCR over 24 h below 70 % warning, 55 % critical).", height=3))
    t, q = scoped("team"), scoped("queue")
    b.row("Teams and queues")
    b.add(
        timeseries_panel("Occupancy per team, 1 h", "Time on a contact or in after-contact work over time available "
                         "or on a contact or in after-contact work, over the last hour (docs/workforce.md).",
                         [Series(gauge("sqm_occupancy", [*t, 'window="1h"']), "{{scope}}")], unit="percentunit",
                         min_=0, max_=1, thresholds=lower_is_better(0.85, 0.92), span=8),
        timeseries_panel("Time away per team, 1 h", "Time away (breaks, lunch, training) over time logged in, over "
                         "the last hour.", [Series(gauge("sqm_away_share", [*t, 'window="1h"']), "{{scope}}")],
                         unit="percentunit", min_=0, max_=1, span=8),
        timeseries_panel("Agents by state per queue", "Agents of each selected queue available, on a contact, in "
                         "after-contact work and away (live state).",
                         [Series(gauge(f"sqm_agents_{state}", q), "{{scope}} " + word)
                          for state, word in (("available", "available"), ("on_contact", "on a contact"),
                                              ("after_contact_work", "wrap-up"), ("away", "away"))],
                         unit="short", min_=0, decimals=0, span=8),
    )
    b.row("Agents over the time range")
    b.add(table_panel(
        "Agents over the time range", "One row per selected agent. Over the dashboard's time range: KPIs are ratios "
        "of counter increases per agent, counts are increases deduplicated over the API replicas; `Open now` is "
        "live state.", "scope", "Agent", [
            Column("Resolved tickets", count(["sqm_kpi_tickets_resolved_total"], a, split=True), "short", decimals=0),
            Column("Calls ended", count(["sqm_kpi_calls_ended_total"], a, split=True), "short", decimals=0),
            Column("FCR", kpi("fcr", a, split=True), "percentunit", FCR, 1),
            Column("First-response SLA", kpi("first_response_sla", a, split=True), "percentunit", FR_SLA, 1),
            Column("Mean first response", kpi("first_response_mean", a, split=True), "s", decimals=0),
            Column("AHT", kpi("aht", a, split=True), "s", decimals=0),
            Column("CSAT", kpi("csat", a, split=True), "percentunit", CSAT, 1),
            Column("Open now", gauge("sqm_backlog_tickets", a), "short", decimals=0),
        ], sort_by="Resolved tickets", height=10))
    b.row("Agents over time")
    b.add(
        timeseries_panel("First-contact resolution per agent, 1 h", "1 h rolling FCR of each selected agent "
                         "(recording rule kind_scope:sqm_kpi_first_contact_resolution:ratio_rate1h).",
                         [Series(recorded("fcr", a), "{{scope}}")], unit="percentunit", min_=0, max_=1,
                         thresholds=FCR, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("CSAT per agent, 1 h", "1 h rolling CSAT of each selected agent (recording rule "
                         "kind_scope:sqm_kpi_csat:ratio_rate1h).", [Series(recorded("csat", a), "{{scope}}")],
                         unit="percentunit", min_=0, max_=1, thresholds=CSAT, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Contacts handled per agent", "Tickets resolved plus calls ended, per minute over "
                         "$__rate_interval.",
                         [Series(per_minute(["sqm_kpi_tickets_resolved_total", "sqm_kpi_calls_ended_total"], a),
                                 "{{scope}}")], unit="cpm", min_=0),
        timeseries_panel("Average handle time per agent", "Talk + hold + wrap of ended calls / calls ended, each "
                         "point over $__rate_interval (widen the time range for smoother lines).",
                         [Series(kpi("aht", a, RATE, split=True), "{{scope}}")], unit="s", min_=0),
        timeseries_panel("Open tickets per agent", "Tickets assigned to each selected agent and open now (live "
                         "state).", [Series(gauge("sqm_backlog_tickets", a), "{{scope}}")], unit="short", min_=0,
                         decimals=0, span=24),
    )
    return b.build()
