"""sqm / Alerts and delivery: sqm's KPI alerts and the notification outbox that delivers them."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .panels import (
    BAD,
    GOOD,
    NEUTRAL,
    WARN,
    Column,
    Series,
    dashboard,
    datasource_variable,
    job_variable,
    lower_is_better,
    query_variable,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
)
from .promql import RATE, counter_by, gauge, ratio

UID = "sqm-alerts-delivery"
TARGET = ('target=~"$target"',)
AGE = lower_is_better(60, 300)  # SqmAlertOutboxBacklog fires after 5 min


def _per_minute(metric: str) -> str:
    return f"60 * {counter_by(metric, TARGET, 'target', RATE)}"


def build() -> dm.Dashboard:
    b = dashboard(UID, "sqm / Alerts and delivery",
                  "sqm's KPI alerts (firing, pending) and the outbox that delivers their notifications (depth, age, "
                  "parked, attempts and failures per target). The figures are read from sqm's database by every API "
                  "replica alike: they are deduplicated with max.",
                  [datasource_variable(), job_variable(),
                   query_variable("target", "target", 'label_values(sqm_alert_delivery_attempts_total{job=~"$job"}, '
                                  "target)", "Notification targets (webhook, Alertmanager, Slack, e-mail...)")],
                  time_from="now-6h")
    b.row("Alerts")
    b.add(
        stat_panel("Firing critical", "KPI alerts firing at severity critical.",
                   gauge("sqm_alerts_firing", ('severity="critical"',), by="severity"), unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, BAD)), instant=False, span=6),
        stat_panel("Firing warning", "KPI alerts firing at severity warning.",
                   gauge("sqm_alerts_firing", ('severity="warning"',), by="severity"), unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, WARN)), instant=False, span=6),
        stat_panel("Pending", "KPI alerts whose condition holds, waiting out their `for`.",
                   gauge("sqm_alerts_pending", (), by=""), unit="short", decimals=0, thresholds=steps(NEUTRAL),
                   instant=False, span=6),
        stat_panel("Transitions refused by the database", "Transitions of the alerts topic the database refused "
                   "(table parked_transitions): in no alert's history and not delivered. Any is a warning "
                   "(SqmAlertTransitionsParked).", gauge("sqm_alert_transitions_parked", (), by=""), unit="short",
                   decimals=0, thresholds=steps(GOOD, (1, WARN)), instant=False, span=6),
        timeseries_panel("Firing and pending alerts", "Firing KPI alerts per severity and pending ones.",
                         [Series(gauge("sqm_alerts_firing", (), by="severity"), "firing {{severity}}"),
                          Series(gauge("sqm_alerts_pending", (), by=""), "pending")],
                         unit="short", min_=0, decimals=0, span=24),
    )
    b.row("Outbox")
    b.add(
        stat_panel("Waiting for delivery", "Notifications not yet delivered (parked ones apart).",
                   gauge("sqm_alert_outbox_depth", (), by=""), unit="short", decimals=0, thresholds=steps(NEUTRAL),
                   instant=False, span=8),
        stat_panel("Oldest waiting notification", "Age of the oldest undelivered notification. Orange from 1 min, red "
                   "from 5 min (SqmAlertOutboxBacklog).", gauge("sqm_alert_outbox_oldest_age_seconds", (), by=""),
                   unit="s", decimals=0, thresholds=AGE, instant=False, span=8),
        stat_panel("Parked notifications", "Notifications that failed for good (or for a day): nothing retries them "
                   "until an admin does (POST /v1/notifications/retry). Any is a warning (SqmNotificationsParked).",
                   f"sum({gauge('sqm_alert_outbox_parked', TARGET, by='target')})", unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, WARN)), instant=False, span=8),
        timeseries_panel("Waiting per target", "Notifications not yet delivered, per selected target.",
                         [Series(gauge("sqm_alert_outbox_target_depth", TARGET, by="target"), "{{target}}")],
                         unit="short", min_=0, decimals=0, span=8),
        timeseries_panel("Oldest waiting notification over time",
                         "Age of the oldest undelivered notification (all targets).",
                         [Series(gauge("sqm_alert_outbox_oldest_age_seconds", (), by=""), "oldest")], unit="s",
                         min_=0, thresholds=AGE, span=8),
        timeseries_panel("Parked per target", "Parked notifications per selected target.",
                         [Series(gauge("sqm_alert_outbox_parked", TARGET, by="target"), "{{target}}")],
                         unit="short", min_=0, decimals=0, thresholds=steps(GOOD, (1, WARN)), span=8),
    )
    b.row("Delivery")
    b.add(
        timeseries_panel("Delivery attempts per target", "Attempts per minute over $__rate_interval.",
                         [Series(_per_minute("sqm_alert_delivery_attempts_total"), "{{target}}")], unit="cpm",
                         min_=0, span=8),
        timeseries_panel("Failed attempts per target", "Failed attempts per minute over $__rate_interval; sqm retries "
                         "with backoff (SqmAlertDeliveryFailing after 10 min of failures).",
                         [Series(_per_minute("sqm_alert_delivery_failures_total"), "{{target}}")], unit="cpm",
                         min_=0, span=8),
        timeseries_panel("Delivered per target", "Notifications delivered per minute over $__rate_interval.",
                         [Series(_per_minute("sqm_alert_deliveries_total"), "{{target}}")], unit="cpm", min_=0,
                         span=8),
        table_panel("Delivery per target over the time range", "Counts are counter increases over the dashboard's "
                    "time range (deduplicated over the API replicas); the failure ratio is failures / attempts "
                    "over the same range; `now` columns are the current outbox.", "target", "Target", [
                        Column("Attempts", counter_by("sqm_alert_delivery_attempts_total", TARGET, "target"), "short",
                               decimals=0),
                        Column("Failures", counter_by("sqm_alert_delivery_failures_total", TARGET, "target"), "short",
                               decimals=0),
                        Column("Failure ratio", ratio(counter_by("sqm_alert_delivery_failures_total", TARGET, "target"),
                                                      counter_by("sqm_alert_delivery_attempts_total", TARGET,
                                                                 "target")),
                               "percentunit", lower_is_better(0.01, 0.10), 1),
                        Column("Delivered", counter_by("sqm_alert_deliveries_total", TARGET, "target"), "short",
                               decimals=0),
                        Column("Waiting now", gauge("sqm_alert_outbox_target_depth", TARGET, by="target"), "short",
                               decimals=0),
                        Column("Parked now", gauge("sqm_alert_outbox_parked", TARGET, by="target"), "short",
                               steps(GOOD, (1, WARN)), 0),
                    ], sort_by="Attempts"),
    )
    return b.build()
