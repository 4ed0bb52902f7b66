"""sqm / Overview: the headline KPIs over the dashboard's range, their 1 h trends, backlog, calls, alerts."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .panels import (
    BAD,
    GOOD,
    NEUTRAL,
    WARN,
    Series,
    bargauge_panel,
    dashboard,
    datasource_variable,
    higher_is_better,
    job_variable,
    lower_is_better,
    scope_variable,
    stat_panel,
    steps,
    timeseries_panel,
)
from .promql import ALL, count, gauge, kpi, recorded, scoped

UID = "sqm-overview"
RANGE_NOTE = "over the dashboard's time range: a ratio of counter increases, pooled over every event."


def build() -> dm.Dashboard:
    b = dashboard(UID, "sqm / Overview",
                  "Headline service quality of the whole contact centre (scope `all`): KPIs over the selected "
                  "range, 1 h trends, ticket backlog, waiting calls and firing alerts.",
                  [datasource_variable(), job_variable(), scope_variable("team"), scope_variable("channel"),
                   scope_variable("tier")])
    b.row("Headline KPIs over the time range")
    b.add(
        stat_panel("First-response SLA", f"First responses within their tier's target / first responses, {RANGE_NOTE} "
                   "Targets per tier: SQM_FR_TARGETS. Orange below 95 %, red below 85 % (the VIP alert rule).",
                   kpi("first_response_sla", ALL), unit="percentunit", decimals=1, min_=0, max_=1,
                   thresholds=higher_is_better(0.85, 0.95)),
        stat_panel("Mean first response", f"Mean time from ticket creation to first response, {RANGE_NOTE} "
                   "Orange from 1 h, red from 4 h (the default non-VIP target).",
                   kpi("first_response_mean", ALL), unit="s", decimals=0, thresholds=lower_is_better(3600, 14400)),
        stat_panel("Mean resolution time", f"Mean time from ticket creation to resolution, {RANGE_NOTE} "
                   "sqm declares no resolution target: no colour.",
                   kpi("resolution_mean", ALL), unit="s", decimals=0, thresholds=steps(NEUTRAL)),
        stat_panel("First-contact resolution", "(Tickets resolved with one contact + ended calls marked resolved) / "
                   f"(tickets resolved + calls ended), {RANGE_NOTE} Orange below 70 %, red below 55 %.",
                   kpi("fcr", ALL), unit="percentunit", decimals=1, min_=0, max_=1,
                   thresholds=higher_is_better(0.55, 0.70)),
        stat_panel("CSAT", f"Survey responses with csat >= 4 / responses with csat, {RANGE_NOTE} "
                   "Orange below 85 %, red below 70 %.", kpi("csat", ALL), unit="percentunit", decimals=1,
                   min_=0, max_=1, thresholds=higher_is_better(0.70, 0.85)),
        stat_panel("NPS", f"100 x (promoters (9-10) - detractors (0-6)) / responses with nps, {RANGE_NOTE} "
                   "Orange below 30, red below 10.", kpi("nps", ALL), unit="none", decimals=0, min_=-100, max_=100,
                   thresholds=higher_is_better(10, 30)),
        stat_panel("Service level", "Calls answered within their queue's threshold / (answered + abandoned after the "
                   f"short-abandon cut-off), {RANGE_NOTE} Orange below 80 %, red below 60 %.",
                   kpi("service_level", ALL), unit="percentunit", decimals=1, min_=0, max_=1,
                   thresholds=higher_is_better(0.60, 0.80)),
        stat_panel("Abandonment", "Calls abandoned after the short-abandon cut-off / (answered + those abandoned), "
                   f"{RANGE_NOTE} Orange from 5 %, red from 10 %.", kpi("abandonment", ALL), unit="percentunit",
                   decimals=1, min_=0, max_=1, thresholds=lower_is_better(0.05, 0.10)),
        stat_panel("Average speed of answer", f"Mean wait of answered calls, {RANGE_NOTE} Orange from 20 s (the "
                   "default service-level threshold), red from 60 s.", kpi("asa", ALL), unit="s", decimals=1,
                   thresholds=lower_is_better(20, 60)),
        stat_panel("CES", f"Mean customer-effort score (1 = effortless .. 7), {RANGE_NOTE} Lower is better: orange "
                   "from 3, red from 4.", kpi("ces", ALL), unit="none", decimals=2, min_=1, max_=7,
                   thresholds=lower_is_better(3, 4)),
        stat_panel("Tickets created", "ticket.created events over the dashboard's time range (counter increase, "
                   "deduplicated over the API replicas).", count(["sqm_kpi_tickets_created_total"], ALL),
                   unit="short", decimals=0, thresholds=steps(NEUTRAL)),
        stat_panel("Calls offered", "call.offered events over the dashboard's time range (counter increase, "
                   "deduplicated over the API replicas).", count(["sqm_kpi_calls_offered_total"], ALL),
                   unit="short", decimals=0, thresholds=steps(NEUTRAL)),
    )
    b.row("Trends, 1 h rolling")
    trend = "1 h rolling ratio from the recording rule {rule} (scope all). Dashed lines: the colour thresholds."
    b.add(
        timeseries_panel("Service level, 1 h", trend.format(rule="kind_scope:sqm_kpi_service_level:ratio_rate1h"),
                         [Series(recorded("service_level", ALL), "service level")], unit="percentunit",
                         min_=0, max_=1, thresholds=higher_is_better(0.60, 0.80), span=8,
                         calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Abandonment, 1 h", trend.format(rule="kind_scope:sqm_kpi_abandonment:ratio_rate1h"),
                         [Series(recorded("abandonment", ALL), "abandonment")], unit="percentunit", min_=0,
                         thresholds=lower_is_better(0.05, 0.10), span=8),
        timeseries_panel("First-response SLA, 1 h",
                         trend.format(rule="kind_scope:sqm_kpi_first_response_sla:ratio_rate1h"),
                         [Series(recorded("first_response_sla", ALL), "first-response SLA")], unit="percentunit",
                         min_=0, max_=1, thresholds=higher_is_better(0.85, 0.95), span=8,
                         calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("First-contact resolution, 1 h",
                         trend.format(rule="kind_scope:sqm_kpi_first_contact_resolution:ratio_rate1h"),
                         [Series(recorded("fcr", ALL), "FCR")], unit="percentunit", min_=0, max_=1,
                         thresholds=higher_is_better(0.55, 0.70), span=8, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("CSAT, 1 h", trend.format(rule="kind_scope:sqm_kpi_csat:ratio_rate1h"),
                         [Series(recorded("csat", ALL), "CSAT")], unit="percentunit", min_=0, max_=1,
                         thresholds=higher_is_better(0.70, 0.85), span=8, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("NPS, 1 h", trend.format(rule="kind_scope:sqm_kpi_nps:score_rate1h"),
                         [Series(recorded("nps", ALL), "NPS")], unit="none", min_=-100, max_=100, decimals=0,
                         thresholds=higher_is_better(10, 30), span=8, calcs=("mean", "min", "lastNotNull")),
        timeseries_panel("Contact volume", "Tickets created and calls offered per minute, 5 m rate from the "
                         "recording rules kind_scope:sqm_kpi_tickets_created:rate5m and "
                         "kind_scope:sqm_kpi_calls_offered:rate5m (scope all).",
                         [Series(f"60 * {recorded('tickets_created', ALL)}", "tickets created"),
                          Series(f"60 * {recorded('calls_offered', ALL)}", "calls offered")],
                         unit="cpm", min_=0, span=24, height=6),
    )
    b.row("The voice of the customer")
    b.add(
        stat_panel("Negative comments", f"Survey comments read as negative / comments, {RANGE_NOTE} Orange from "
                   "35 %, red from 50 % (the default rule negative-comments-high).", kpi("negative_comments", ALL),
                   unit="percentunit", decimals=1, min_=0, max_=1, thresholds=lower_is_better(0.35, 0.50), span=6),
        stat_panel("Comment sentiment", f"Mean sentiment of the survey comments, -1 .. 1, {RANGE_NOTE} Orange "
                   "below 0, red below -0.3.", kpi("sentiment", ALL), unit="none", decimals=2, min_=-1, max_=1,
                   thresholds=higher_is_better(-0.3, 0.0), span=6),
        stat_panel("Comments contradicting their score", f"Comments whose label contradicts their CSAT or NPS / "
                   f"comments, {RANGE_NOTE} Orange from 10 %, red from 20 %.", kpi("mismatch", ALL),
                   unit="percentunit", decimals=1, min_=0, max_=1, thresholds=lower_is_better(0.10, 0.20), span=6),
        stat_panel("Comments", "Survey responses with a comment over the dashboard's time range (counter increase, "
                   "deduplicated over the API replicas). What they say: the board's \"What customers say\".",
                   count(["sqm_kpi_comments_total"], ALL), unit="short", decimals=0, thresholds=steps(NEUTRAL),
                   span=6),
    )
    b.row("First-response SLA per tier")
    b.add(
        bargauge_panel("First-response SLA per tier", f"First-response SLA of each selected tier, {RANGE_NOTE}",
                       kpi("first_response_sla", scoped("tier"), split=True), "{{scope}}", unit="percentunit",
                       min_=0, max_=1, thresholds=higher_is_better(0.85, 0.95), span=8),
        timeseries_panel("First-response SLA per tier, 1 h", "1 h rolling first-response SLA of each selected tier "
                         "(recording rule kind_scope:sqm_kpi_first_response_sla:ratio_rate1h).",
                         [Series(recorded("first_response_sla", scoped("tier")), "{{scope}}")], unit="percentunit",
                         min_=0, max_=1, thresholds=higher_is_better(0.85, 0.95), span=16,
                         calcs=("mean", "min", "lastNotNull")),
    )
    b.row("Backlog and first-response due times (now)")
    b.add(
        stat_panel("Open tickets", "Tickets open now (live state, scope all).", gauge("sqm_backlog_tickets", ALL),
                   unit="short", decimals=0, thresholds=steps(NEUTRAL), instant=False, span=6),
        stat_panel("Past first-response due", "Open tickets without a first response whose due time has passed "
                   "(live state). Orange from 1, red from 10 (the default alert rule).",
                   gauge("sqm_first_response_overdue_tickets", ALL), unit="short", decimals=0,
                   thresholds=lower_is_better(1, 10), instant=False, span=6),
        stat_panel("At risk of missing first response", "Open tickets without a first response that reach their due "
                   "time within 20 % of their target. Orange from 5, red from 20 (the default alert rule).",
                   gauge("sqm_first_response_at_risk_tickets", ALL), unit="short", decimals=0,
                   thresholds=lower_is_better(5, 20), instant=False, span=6),
        stat_panel("Oldest unanswered ticket", "Age of the oldest open ticket without a first response. Orange from "
                   "1 h, red from 4 h (the default non-VIP target).", gauge("sqm_oldest_unanswered_seconds", ALL),
                   unit="s", decimals=0, thresholds=lower_is_better(3600, 14400), instant=False, span=6),
        timeseries_panel("Open tickets per team", "Backlog of each selected team (live state).",
                         [Series(gauge("sqm_backlog_tickets", scoped("team")), "{{scope}}")], unit="short",
                         min_=0, decimals=0),
        timeseries_panel("Past first-response due per tier", "Overdue tickets of each selected tier (live state).",
                         [Series(gauge("sqm_first_response_overdue_tickets", scoped("tier")), "{{scope}}")],
                         unit="short", min_=0, decimals=0, thresholds=lower_is_better(1, 10)),
    )
    b.row("Calls now")
    b.add(
        stat_panel("Calls waiting", "Calls offered and not yet answered or abandoned (live state, scope all).",
                   gauge("sqm_calls_waiting", ALL), unit="short", decimals=0, thresholds=steps(NEUTRAL),
                   instant=False, span=6, height=8),
        stat_panel("Longest wait", "Now minus the offer time of the oldest waiting call. Orange from 20 s (the "
                   "default service-level threshold), red from 60 s.", gauge("sqm_longest_wait_seconds", ALL),
                   unit="s", decimals=0, thresholds=lower_is_better(20, 60), instant=False, span=6, height=8),
        timeseries_panel("Calls waiting per channel", "Waiting calls of each selected channel (live state).",
                         [Series(gauge("sqm_calls_waiting", scoped("channel")), "{{scope}}")], unit="short",
                         min_=0, decimals=0),
    )
    b.row("Alerts")
    b.add(
        stat_panel("Firing critical", "KPI alerts firing at severity critical (sqm's own alert engine).",
                   gauge("sqm_alerts_firing", ('severity="critical"',), by="severity"), unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, BAD)), instant=False, height=8),
        stat_panel("Firing warning", "KPI alerts firing at severity warning.",
                   gauge("sqm_alerts_firing", ('severity="warning"',), by="severity"), unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, WARN)), instant=False, height=8),
        stat_panel("Pending", "KPI alerts whose condition holds, waiting out their `for`.",
                   gauge("sqm_alerts_pending", (), by=""), unit="short", decimals=0, thresholds=steps(NEUTRAL),
                   instant=False, height=8),
        timeseries_panel("Firing alerts by severity", "Firing KPI alerts per severity, stacked.",
                         [Series(gauge("sqm_alerts_firing", (), by="severity"), "{{severity}}")], unit="short",
                         min_=0, decimals=0, stack=True),
    )
    return b.build()

