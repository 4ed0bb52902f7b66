"""sqm / Queues and teams: per-queue call handling, per-team ticket handling, channels and tiers."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .panels import (
    NEUTRAL,
    Column,
    Series,
    dashboard,
    datasource_variable,
    higher_is_better,
    job_variable,
    lower_is_better,
    scope_variable,
    steps,
    table_panel,
    timeseries_panel,
)
from .promql import count, gauge, kpi, per_minute, recorded, scoped

UID = "sqm-queues-teams"
TABLE_NOTE = ("Over the dashboard's time range: KPIs are ratios of counter increases per scope, counts are "
              "increases deduplicated over the API replicas; the `now` columns are live state.")

SL = higher_is_better(0.60, 0.80)
ABANDON = lower_is_better(0.05, 0.10)
WAIT = lower_is_better(20, 60)
FR_SLA = higher_is_better(0.85, 0.95)
CSAT = higher_is_better(0.70, 0.85)
NPS = higher_is_better(10, 30)
FCR = higher_is_better(0.55, 0.70)


def build() -> dm.Dashboard:
    q, t, ch, ti = scoped("queue"), scoped("team"), scoped("channel"), scoped("tier")
    b = dashboard(UID, "sqm / Queues and teams",
                  "Calls per queue (service level, abandonment, speed of answer, volume) and tickets per team "
                  "(first-response SLA, backlog, satisfaction), with channel and tier breakdowns.",
                  [datasource_variable(), job_variable(), scope_variable("queue"),
                   scope_variable("team"), scope_variable("channel"), scope_variable("tier")])
    b.row("Queues")
    b.add(table_panel(
        "Queues over the time range", f"One row per selected queue. {TABLE_NOTE}", "scope", "Queue", [
            Column("Offered", count(["sqm_kpi_calls_offered_total"], q, split=True), "short", decimals=0),
            Column("Answered", count(["sqm_kpi_calls_answered_total"], q, split=True), "short", decimals=0),
            Column("Service level", kpi("service_level", q, split=True), "percentunit", SL, 1),
            Column("Abandonment", kpi("abandonment", q, split=True), "percentunit", ABANDON, 1),
            Column("ASA", kpi("asa", q, split=True), "s", WAIT, 1),
            Column("AHT", kpi("aht", q, split=True), "s", decimals=0),
            Column("Waiting now", gauge("sqm_calls_waiting", q), "short", decimals=0),
            Column("Longest wait now", gauge("sqm_longest_wait_seconds", q), "s", WAIT, 0),
        ], sort_by="Offered"))
    b.add(
        timeseries_panel("Service level per queue, 1 h", "1 h rolling service level of each selected queue "
                         "(recording rule kind_scope:sqm_kpi_service_level:ratio_rate1h).",
                         [Series(recorded("service_level", q), "{{scope}}")], unit="percentunit", min_=0, max_=1,
                         thresholds=SL, span=8, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Abandonment per queue, 1 h", "1 h rolling abandonment of each selected queue "
                         "(recording rule kind_scope:sqm_kpi_abandonment:ratio_rate1h).",
                         [Series(recorded("abandonment", q), "{{scope}}")], unit="percentunit", min_=0,
                         thresholds=ABANDON, span=8),
        timeseries_panel("Average speed of answer per queue, 1 h", "1 h rolling mean wait of answered calls of each "
                         "selected queue (recording rule kind_scope:sqm_kpi_asa:seconds_rate1h).",
                         [Series(recorded("asa", q), "{{scope}}")], unit="s", min_=0, thresholds=WAIT, span=8),
        timeseries_panel("Calls offered per queue", "call.offered per minute of each selected queue, over "
                         "$__rate_interval.", [Series(per_minute(["sqm_kpi_calls_offered_total"], q), "{{scope}}")],
                         unit="cpm", min_=0, span=8),
        timeseries_panel("Calls waiting per queue", "Calls offered and not yet answered or abandoned (live state).",
                         [Series(gauge("sqm_calls_waiting", q), "{{scope}}")], unit="short", min_=0, decimals=0,
                         span=8),
        timeseries_panel("Longest wait per queue", "Now minus the offer time of the oldest waiting call (live "
                         "state).", [Series(gauge("sqm_longest_wait_seconds", q), "{{scope}}")], unit="s", min_=0,
                         thresholds=WAIT, span=8),
    )
    b.row("Staffing and forecast")
    b.add(
        timeseries_panel("Agents needed and staffed per queue", "Erlang C's required agents for the calls of the "
                         "last 15 minutes at the queue's handle time and service-level target, against the agents "
                         "staffed minus those away (live state; docs/workforce.md). Below the line: short.",
                         [Series(gauge("sqm_required_agents", q), "{{scope}} needed"),
                          Series(f"{gauge('sqm_agents_staffed', q)} - {gauge('sqm_agents_away', q)}",
                                 "{{scope}} staffed")], unit="short", min_=0, decimals=0, span=8),
        timeseries_panel("Staffing gap per queue, now and next 15 min", "Agents staffed minus away minus required "
                         "now (solid) and for the next quarter hour's forecast calls (`_next`); negative: short. The "
                         "understaffed and understaffed-next-interval rules fire below 0.",
                         [Series(gauge("sqm_staffing_gap", q), "{{scope}} now"),
                          Series(gauge("sqm_staffing_gap_next", q), "{{scope}} next 15 min")], unit="short",
                         decimals=0, thresholds=higher_is_better(-5, 0), span=8),
        timeseries_panel("Forecast against actual calls per queue", "The calls the forecast expects in the current "
                         "quarter hour (a step at each quarter) against the calls offered over the last 15 minutes "
                         "(rolling): at each quarter's end they meet where the forecast was right "
                         "(docs/workforce.md \"Forecast\").",
                         [Series(gauge("sqm_calls_offered_forecast", q), "{{scope}} forecast"),
                          Series(gauge("sqm_calls_offered", [*q, 'window="15m"']), "{{scope}} actual, 15 min")],
                         unit="short", min_=0, decimals=0, span=8),
    )
    b.row("Teams")
    b.add(table_panel(
        "Teams over the time range", f"One row per selected team. {TABLE_NOTE}", "scope", "Team", [
            Column("Tickets created", count(["sqm_kpi_tickets_created_total"], t, split=True), "short", decimals=0),
            Column("First-response SLA", kpi("first_response_sla", t, split=True), "percentunit", FR_SLA, 1),
            Column("Mean first response", kpi("first_response_mean", t, split=True), "s", decimals=0),
            Column("Resolved", count(["sqm_kpi_tickets_resolved_total"], t, split=True), "short", decimals=0),
            Column("Mean resolution", kpi("resolution_mean", t, split=True), "s", decimals=0),
            Column("FCR", kpi("fcr", t, split=True), "percentunit", FCR, 1),
            Column("Reopened", kpi("reopen", t, split=True), "percentunit", decimals=1),
            Column("CSAT", kpi("csat", t, split=True), "percentunit", CSAT, 1),
            Column("Open now", gauge("sqm_backlog_tickets", t), "short", decimals=0),
            Column("Past due now", gauge("sqm_first_response_overdue_tickets", t), "short",
                   lower_is_better(1, 10), 0),
        ], sort_by="Tickets created"))
    b.add(
        timeseries_panel("First-response SLA per team, 1 h", "1 h rolling first-response SLA of each selected team "
                         "(recording rule kind_scope:sqm_kpi_first_response_sla:ratio_rate1h).",
                         [Series(recorded("first_response_sla", t), "{{scope}}")], unit="percentunit", min_=0,
                         max_=1, thresholds=FR_SLA, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Open tickets per team", "Backlog of each selected team (live state).",
                         [Series(gauge("sqm_backlog_tickets", t), "{{scope}}")], unit="short", min_=0, decimals=0),
        timeseries_panel("CSAT per team, 1 h", "1 h rolling CSAT of each selected team (recording rule "
                         "kind_scope:sqm_kpi_csat:ratio_rate1h).", [Series(recorded("csat", t), "{{scope}}")],
                         unit="percentunit", min_=0, max_=1, thresholds=CSAT, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Tickets created per team", "ticket.created per minute of each selected team, over "
                         "$__rate_interval.", [Series(per_minute(["sqm_kpi_tickets_created_total"], t), "{{scope}}")],
                         unit="cpm", min_=0),
    )
    b.row("Channels and tiers")
    b.add(
        table_panel("Channels over the time range", f"One row per selected channel. {TABLE_NOTE}", "scope", "Channel", [
            Column("Tickets created", count(["sqm_kpi_tickets_created_total"], ch, split=True), "short", decimals=0),
            Column("First-response SLA", kpi("first_response_sla", ch, split=True), "percentunit", FR_SLA, 1),
            Column("Calls offered", count(["sqm_kpi_calls_offered_total"], ch, split=True), "short", decimals=0),
            Column("Service level", kpi("service_level", ch, split=True), "percentunit", SL, 1),
            Column("CSAT", kpi("csat", ch, split=True), "percentunit", CSAT, 1),
            Column("NPS", kpi("nps", ch, split=True), "none", NPS, 0),
        ], sort_by="Tickets created", span=12),
        table_panel("Tiers over the time range", f"One row per selected customer tier. {TABLE_NOTE}", "scope", "Tier", [
            Column("Tickets created", count(["sqm_kpi_tickets_created_total"], ti, split=True), "short", decimals=0),
            Column("First-response SLA", kpi("first_response_sla", ti, split=True), "percentunit", FR_SLA, 1),
            Column("Mean first response", kpi("first_response_mean", ti, split=True), "s", decimals=0),
            Column("CSAT", kpi("csat", ti, split=True), "percentunit", CSAT, 1),
            Column("NPS", kpi("nps", ti, split=True), "none", NPS, 0),
            Column("Open now", gauge("sqm_backlog_tickets", ti), "short", steps(NEUTRAL), 0),
        ], sort_by="Tickets created", span=12),
    )
    return b.build()
