"""sqm / Monitor health: the stream workers, the event pipeline and the API replicas that serve /metrics."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from .panels import (
    BAD,
    GOOD,
    NEUTRAL,
    WARN,
    Series,
    dashboard,
    datasource_variable,
    job_variable,
    lower_is_better,
    query_variable,
    stat_panel,
    state_panel,
    steps,
    timeseries_panel,
)
from .promql import RANGE, RATE, counter_by, gauge, selector

UID = "sqm-health"
# The partition count the rules in deploy/prometheus/sqm-rules.yml assume (SQM_PARTITIONS, default 6)
PARTITIONS = 6
WORKER = ('worker=~"$worker"',)
INSTANCE = ('instance=~"$instance"',)
LAG = lower_is_better(1000, 10000)  # SqmWorkerLagging fires above 10,000
HEARTBEAT = lower_is_better(10, 20)  # a worker is down once its heartbeat is 20 s old (written every 5 s)


def _up(metric: str) -> str:
    """Sum over the live workers only, as the alert rules do."""
    return (f"sum({gauge(metric, (), by='worker')} * on (worker) "
            f"{gauge('sqm_worker_up', (), by='worker')})")


def _mapping(values: dict[str, tuple[str, str]]) -> dm.ValueMap:
    return dm.ValueMap(options={k: dm.ValueMappingResult(text=t, color=c, index=i)
                                for i, (k, (t, c)) in enumerate(values.items())})


def _per_replica(metric: str) -> str:
    return f"max by (instance) ({selector(metric, *INSTANCE)})"


def build() -> dm.Dashboard:
    b = dashboard(UID, "sqm / Monitor health",
                  "sqm's own health: stream workers (heartbeat, lag, memory, partitions), the event pipeline (events, "
                  "dead letters, late, duplicate and overflow events) and the API replicas (state view, ingest, alert "
                  "figures). Worker and pipeline figures are the same on every API replica (max over them); the "
                  "replica panels are per instance.",
                  [datasource_variable(), job_variable(),
                   query_variable("worker", "worker", 'label_values(sqm_worker_up{job=~"$job"}, worker)',
                                  "Stream workers (their heartbeat name)"),
                   query_variable("instance", "instance", 'label_values(sqm_view_warm{job=~"$job"}, instance)',
                                  "API replicas scraped (for the per-replica panels)")],
                  time_from="now-6h")
    b.row("Workers")
    b.add(
        stat_panel("Workers up", "Workers whose heartbeat is fresh (all workers). Red at 0 (SqmNoWorker).",
                   f"sum({gauge('sqm_worker_up', (), by='worker')})", unit="short", decimals=0,
                   thresholds=steps(BAD, (1, GOOD)), instant=False, span=6),
        stat_panel("Source partitions assigned", f"Source partitions held by live workers (all workers). Red below "
                   f"{PARTITIONS}, the default SQM_PARTITIONS (SqmPartitionsUnassigned).",
                   _up("sqm_worker_assigned_partitions"), unit="short", decimals=0,
                   thresholds=steps(BAD, (PARTITIONS, GOOD)), instant=False, span=6),
        stat_panel("Scope partitions evaluated", f"Scope partitions whose KPI alerts live workers evaluate (all "
                   f"workers). Red below {PARTITIONS} (SqmAlertEvaluationIncomplete).",
                   _up("sqm_worker_alert_partitions"), unit="short", decimals=0,
                   thresholds=steps(BAD, (PARTITIONS, GOOD)), instant=False, span=6),
        stat_panel("Total lag", "Source messages not yet processed, summed over the workers. Orange from 1,000, red "
                   "from 10,000.", f"sum({gauge('sqm_worker_lag_messages', (), by='worker')})", unit="short",
                   decimals=0, thresholds=LAG, instant=False, span=6),
        state_panel("Worker up", "1 while the worker's heartbeat is fresh (under 20 s old).",
                    gauge("sqm_worker_up", WORKER, by="worker"), "{{worker}}",
                    mappings=[_mapping({"1": ("up", GOOD), "0": ("down", BAD)})], thresholds=steps(BAD, (1, GOOD)),
                    span=24),
        timeseries_panel("Lag per worker", "Source messages not yet processed.",
                         [Series(gauge("sqm_worker_lag_messages", WORKER, by="worker"), "{{worker}}")], unit="short",
                         min_=0, decimals=0, thresholds=LAG, span=8),
        timeseries_panel("Heartbeat age per worker", "Seconds since the worker's last heartbeat (written every 5 s).",
                         [Series(gauge("sqm_worker_heartbeat_age_seconds", WORKER, by="worker"), "{{worker}}")],
                         unit="s", min_=0, thresholds=HEARTBEAT, span=8),
        timeseries_panel("Resident memory per worker", "Worker RSS, from its heartbeat.",
                         [Series(gauge("sqm_worker_resident_memory_bytes", WORKER, by="worker"), "{{worker}}")],
                         unit="bytes", min_=0, span=8),
        timeseries_panel("Partitions per worker", "Source partitions assigned and scope partitions whose alerts the "
                         "worker evaluates.",
                         [Series(gauge("sqm_worker_assigned_partitions", WORKER, by="worker"), "source {{worker}}"),
                          Series(gauge("sqm_worker_alert_partitions", WORKER, by="worker"), "alerts {{worker}}")],
                         unit="short", min_=0, decimals=0, span=24, height=6),
    )
    b.row("Event pipeline")
    b.add(
        timeseries_panel("Events per second by type", "Valid input events processed per second, over "
                         "$__rate_interval.", [Series(counter_by("sqm_events_total", (), "type", RATE), "{{type}}")],
                         unit="cps", min_=0, stack=True, span=8),
        timeseries_panel("Dead letters per second by reason", "Input messages rejected to the dead-letter topic. "
                         "Orange from 0.01/s, red from 0.1/s (SqmDeadLetters).",
                         [Series(counter_by("sqm_deadletter_total", (), "reason", RATE), "{{reason}}")], unit="cps",
                         min_=0, thresholds=lower_is_better(0.01, 0.1), span=8),
        timeseries_panel("Late, duplicate and overflow events", "Per second: events older than the longest window (not "
                         "counted), events whose event_id was already counted, and events counted under "
                         "`<kind>:other` because their partition holds the cap of distinct values.",
                         [Series(counter_by("sqm_late_events_total", (), "job", RATE), "late"),
                          Series(counter_by("sqm_duplicate_events_total", (), "job", RATE), "duplicate"),
                          Series(counter_by("sqm_scope_overflow_events_total", (), "dimension", RATE),
                                 "overflow {{dimension}}")], unit="cps", min_=0, span=8),
        stat_panel("Dead letters over the time range", "Messages dead-lettered over the dashboard's time range.",
                   f"sum({counter_by('sqm_deadletter_total', (), 'reason', RANGE)})", unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, WARN)), span=8),
        stat_panel("Duplicates over the time range", "Events counted once although delivered again (after a "
                   "rebalance, or a producer retry).", counter_by("sqm_duplicate_events_total", (), "job", RANGE),
                   unit="short", decimals=0, thresholds=steps(NEUTRAL), span=8),
        stat_panel("Late events over the time range", "Events too old for the longest window: not counted.",
                   counter_by("sqm_late_events_total", (), "job", RANGE), unit="short", decimals=0,
                   thresholds=steps(GOOD, (1, WARN)), span=8),
    )
    b.row("API replicas")
    b.add(
        state_panel("State view warm per replica", "1 once the replica's view has read all state written before it "
                    "started; until then its KPIs are partial.", _per_replica("sqm_view_warm"), "{{instance}}",
                    mappings=[_mapping({"1": ("warm", GOOD), "0": ("warming", WARN)})],
                    thresholds=steps(WARN, (1, GOOD)), span=24, height=5),
        timeseries_panel("Last state record age per replica", "Seconds since the newest state record this replica "
                         "read was written. Orange from 30 s, red from 120 s (SqmStateStale).",
                         [Series(_per_replica("sqm_view_last_record_age_seconds"), "{{instance}}")], unit="s",
                         min_=0, thresholds=lower_is_better(30, 120), span=8),
        timeseries_panel("State records read per replica", "State records read per second over $__rate_interval.",
                         [Series(f"sum by (instance) (rate({selector('sqm_view_records_total', *INSTANCE)}[{RATE}]))",
                                 "{{instance}}")], unit="cps", min_=0, span=8),
        timeseries_panel("Alert figures age per replica", "Age of the alert and delivery figures the replica read from "
                         "the database (grows while the database does not answer).",
                         [Series(_per_replica("sqm_alert_stats_age_seconds"), "{{instance}}")], unit="s", min_=0,
                         thresholds=lower_is_better(60, 300), span=8),
        timeseries_panel("Events ingested over HTTP", "POST /v1/events per second over $__rate_interval: accepted, and "
                         "refused by reason. These counters are per replica (each counts its own requests): "
                         "summed, not deduplicated.",
                         [Series(f"sum(rate({selector('sqm_ingest_accepted_total', *INSTANCE)}[{RATE}]))", "accepted"),
                          Series(f"sum by (reason) (rate({selector('sqm_ingest_rejected_total', *INSTANCE)}[{RATE}]))",
                                 "rejected {{reason}}")], unit="cps", min_=0, span=24, height=7),
    )
    return b.build()
