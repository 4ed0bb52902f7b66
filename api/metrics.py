"""Prometheus exposition: a Collector that reads the View at scrape time, plus the API's own counters.

Names follow Prometheus conventions: `sqm_` prefix, base units (`_seconds`), ratios 0..1 (`_ratio`),
`_total` on counters. Labels are bounded: `scope` comes from teams, channels, tiers and queues;
per-agent series for the busiest SQM_METRICS_AGENT_SCOPES agents only (100 by default; about 240 series each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.delivery import one_line
from alerts.history import RESPONSE_BUCKETS_S, AlertStats
from stream.clock import utcnow
from stream.folds import FIELDS, FIELDS_OF
from stream.kpis import KPIS, LIVE, compute
from stream.scopes import kind_of
from stream.view import View
from stream.windows import WINDOWS

log = logging.getLogger(__name__)
FIELD_TOPIC = {f: topic for topic, fields in FIELDS_OF.items() for f in fields}


class FeedState(Protocol):
    """What the collector reads of the state feed (api/feed.py)."""

    warm: bool
    latest_record_ts: float


def metric_name(kpi: str) -> str:
    """The Prometheus name of a KPI: units spelled out, ratios marked."""
    special = {"service_level": "service_level_ratio", "csat": "csat_ratio", "nps": "nps_score",
               "ces_mean": "ces_mean_score", "backlog": "backlog_tickets",
               "first_response_overdue": "first_response_overdue_tickets",
               "first_response_at_risk": "first_response_at_risk_tickets"}
    if kpi in special:
        return f"sqm_{special[kpi]}"
    if kpi.endswith("_s"):
        return f"sqm_{kpi[:-2]}_seconds"
    if kpi.endswith("_rate"):
        return f"sqm_{kpi[:-5]}_ratio"
    return f"sqm_{kpi}"


#: The monotonic counters behind every KPI (`sqm_kpi_<name>_total`), per accumulator field: what
#: Grafana needs for any range, `sum(increase(num[7d])) / sum(increase(den[7d]))`, where the windowed
#: gauges only give their fixed windows. Percentiles have no numerator: they stay gauges.
TOTALS: dict[str, tuple[str, str]] = {
    "created": ("tickets_created", "ticket.created events counted"),
    "complaints": ("complaints_created", "ticket.created events with is_complaint"),
    "fr_n": ("first_responses", "ticket.first_response events counted"),
    "fr_sum": ("first_response_seconds", "sum of first-response durations (ts - created_at)"),
    "fr_sla": ("first_responses_within_target", "first responses within the target of the ticket's tier"),
    "res_n": ("tickets_resolved", "ticket.resolved events counted"),
    "res_sum": ("resolution_seconds", "sum of resolution durations (ts - created_at)"),
    "res_one_contact": ("tickets_resolved_one_contact", "tickets resolved with contacts == 1"),
    "res_bot": ("tickets_resolved_by_bot", "tickets resolved by_bot"),
    "res_complaint": ("complaints_resolved", "complaints resolved"),
    "res_complaint_24h": ("complaints_resolved_within_24h", "complaints resolved within 86400 s"),
    "reopened": ("tickets_reopened", "ticket.reopened events counted"),
    "offered": ("calls_offered", "call.offered events counted"),
    "answered": ("calls_answered", "call.answered events counted"),
    "answered_in_sl": ("calls_answered_within_threshold", "calls answered within the queue's service-level "
                       "threshold"),
    "wait_sum": ("answer_wait_seconds", "sum of wait_s of answered calls"),
    "abandoned": ("calls_abandoned", "call.abandoned events counted (short ones included)"),
    "abandoned_long": ("calls_abandoned_after_cutoff", "calls abandoned after the queue's short-abandon cut-off"),
    "ended": ("calls_ended", "call.ended events counted"),
    "ended_resolved": ("calls_ended_resolved", "call.ended events with resolved"),
    "handle_sum": ("handle_seconds", "sum of talk_s + hold_s + wrap_s of ended calls"),
    "surveys": ("survey_responses", "survey.submitted events counted"),
    "csat_n": ("csat_responses", "survey responses with a csat score"),
    "csat_ok": ("csat_satisfied_responses", "survey responses with csat >= 4"),
    "nps_n": ("nps_responses", "survey responses with an nps score"),
    "promoters": ("nps_promoters", "survey responses with nps >= 9"),
    "detractors": ("nps_detractors", "survey responses with nps <= 6"),
    "ces_n": ("ces_responses", "survey responses with a ces score"),
    "ces_sum": ("ces_score_points", "sum of ces scores"),
    "comments": ("comments", "survey responses with a comment"),
    "comments_negative": ("comments_negative", "comments labelled negative"),
    "comments_nn": ("comments_negative_or_neutral", "comments labelled negative or neutral"),
    "sentiment_pos": ("comment_sentiment_positive", "sum of the positive sentiments of the comments"),
    "sentiment_neg": ("comment_sentiment_negative", "sum of the magnitudes of the negative sentiments of the comments"),
    "comments_mismatch": ("comments_mismatch", "comments whose label contradicts their scores"),
    "t_available": ("agent_available_seconds", "seconds agents spent available (booked when the state ends)"),
    "t_on_contact": ("agent_on_contact_seconds", "seconds agents spent on a contact (booked when it ends)"),
    "t_acw": ("agent_after_contact_work_seconds", "seconds agents spent in after-contact work (booked when it "
              "ends)"),
    "t_away": ("agent_away_seconds", "seconds agents spent away (booked when they come back)"),
}


class ViewCollector(Collector):
    def __init__(self, view: View, feed_state: FeedState, agent_limit: int = 0) -> None:
        self.view = view
        self.feed = feed_state
        self.agent_limit = agent_limit  # agent scopes served: the busiest this many (SQM_METRICS_AGENT_SCOPES)

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        view = self.view
        scopes = [s for s in view.scopes(now=now) if kind_of(s) != "agent"]
        if self.agent_limit:
            scopes += view.busiest("agent", self.agent_limit, now=now)
        fams = {k.name: GaugeMetricFamily(metric_name(k.name), f"{k.help} (rolling window)",
                                          labels=["scope", "kind", "window"]) for k in KPIS}
        counts = GaugeMetricFamily("sqm_kpi_samples", "denominator of each KPI (events behind the value)",
                                   labels=["kpi", "scope", "kind", "window"])
        live = {d.name: GaugeMetricFamily(metric_name(d.name), f"{d.help} (live state)", labels=["scope", "kind"])
                for d in LIVE}
        for scope in scopes:
            kind = kind_of(scope)
            for window in WINDOWS:
                for name, (value, count) in compute(view.window_acc(scope, window, now=now)).items():
                    if value is not None:
                        fams[name].add_metric([scope, kind, window], value)
                    counts.add_metric([name, scope, kind, window], count)
            for name, (value, _) in view.live_kpis(scope, now=now).items():
                if value is not None:
                    live[name].add_metric([scope, kind], value)
        yield from fams.values()
        yield counts
        yield from live.values()
        if self.feed.warm:
            # counters only once the view has read the whole state topic: while it catches up, a
            # partial sum followed by the full one would read as events to `increase()`
            yield from self._totals(scopes)
        yield from self._pipeline(now)

    def _totals(self, scopes: list[str]) -> Iterator[Metric]:
        fams = [CounterMetricFamily(f"sqm_kpi_{TOTALS[f][0]}", f"{TOTALS[f][1]}, since the scope first counted "
                                    "(KPI numerator or denominator)", labels=["scope", "kind"]) for f in FIELDS]
        for scope in scopes:
            found = self.view.kpi_totals(scope)
            if found is None:
                continue
            values, topics = found
            kind = kind_of(scope)
            for i, f in enumerate(FIELDS):
                if FIELD_TOPIC[f] in topics:  # a scope without calls has no call counters, not zeros
                    fams[i].add_metric([scope, kind], values[i])
        yield from fams

    def _pipeline(self, now: float) -> Iterator[Metric]:
        if self.feed.warm:  # like the KPI counters: a partial sum while catching up would read as events
            yield from self._pipeline_counters()
        yield from self._workers(now)

    def _pipeline_counters(self) -> Iterator[Metric]:
        t = self.view.pipeline_counters()
        events = CounterMetricFamily("sqm_events", "valid input events processed, by type", labels=["type"])
        for k, n in sorted(t.events.items()):
            events.add_metric([k], n)
        dead = CounterMetricFamily("sqm_deadletter", "input messages rejected to the dead-letter topic",
                                   labels=["reason"])
        for k, n in sorted(t.dead.items()):
            dead.add_metric([k], n)
        yield events
        yield dead
        yield CounterMetricFamily("sqm_late_events", "events older than the longest window (not counted)",
                                  value=t.late)
        yield CounterMetricFamily("sqm_duplicate_events", "events whose event_id was already counted", value=t.dup)
        over = CounterMetricFamily("sqm_scope_overflow_events",
                                   "events counted under <kind>:other because their partition already holds the "
                                   "cap of distinct values of that dimension", labels=["dimension"])
        for kind in sorted(self.view.caps):
            over.add_metric([kind], t.over.get(kind, 0))
        yield over
        evicted = CounterMetricFamily("sqm_live_state_evicted", "live tickets and calls dropped, oldest first, "
                                      "because their partition held the count bound (SQM_MAX_LIVE_TICKETS, "
                                      "SQM_MAX_LIVE_CALLS)", labels=["kind"])
        for kind in ("ticket", "call"):
            evicted.add_metric([kind], t.evicted.get(kind, 0))
        yield evicted

    def _workers(self, now: float) -> Iterator[Metric]:
        workers = GaugeMetricFamily("sqm_worker_up", "1 for a worker whose heartbeat is fresh", labels=["worker"])
        rss = GaugeMetricFamily("sqm_worker_resident_memory_bytes", "worker RSS", labels=["worker"])
        parts = GaugeMetricFamily("sqm_worker_assigned_partitions", "source partitions assigned", labels=["worker"])
        age = GaugeMetricFamily("sqm_worker_heartbeat_age_seconds", "seconds since the last heartbeat",
                                labels=["worker"])
        lag = GaugeMetricFamily("sqm_worker_lag_messages", "source messages not yet processed", labels=["worker"])
        scoped = GaugeMetricFamily("sqm_worker_alert_partitions", "scope partitions whose alerts the worker "
                                   "evaluates", labels=["worker"])
        for w, hb in sorted(self.view.workers.items()):
            workers.add_metric([w], 1.0 if hb.is_fresh(now) else 0.0)
            rss.add_metric([w], float(hb.rss))
            parts.add_metric([w], len(hb.assigned))
            age.add_metric([w], hb.age(now))
            lag.add_metric([w], float(hb.lag))
            scoped.add_metric([w], len(hb.alert_partitions))
        yield from (workers, rss, parts, age, lag, scoped)
        yield CounterMetricFamily("sqm_view_records", "state records read by this API", value=self.view.records)
        feed = self.feed
        yield GaugeMetricFamily("sqm_view_warm", "1 once the view has read all state written before start",
                                value=1.0 if feed.warm else 0.0)
        latest = feed.latest_record_ts
        if latest:
            yield GaugeMetricFamily("sqm_view_last_record_age_seconds",
                                    "seconds since the newest state record was written", value=now - latest)


class AlertStatsCache:
    """The alert figures of /metrics, read from the database in a thread.

    A scrape asks for a fresh snapshot and waits for it at most `max_wait` seconds: with a healthy
    database the figures are current; with a slow or locked one the scrape gets the last snapshot
    (its age is `sqm_alert_stats_age_seconds`) and the KPI series are never held up. One read at a
    time: a scrape that comes while a read is under way waits for what is left of `max_wait` since
    that read started (nothing, once the database is stuck). A database that refuses connections
    is logged once when the reads start failing and once when they succeed again.
    """

    def __init__(self, read: Callable[[], AlertStats]) -> None:
        self.read = read
        self.stats: AlertStats | None = None
        self.read_at = 0.0
        self.failing_since: float | None = None
        self._reading: asyncio.Task[None] | None = None
        self._started = 0.0

    async def _read(self) -> None:
        try:
            self.stats = await asyncio.to_thread(self.read)
            self.read_at = time.time()
        except Exception as exc:  # the database is away: keep the last snapshot, say how old it is
            if self.failing_since is None:
                self.failing_since = time.time()
                log.warning("alert figures not read from the database (%s); /metrics serves the last ones with "
                            "their age (sqm_alert_stats_age_seconds) until it answers again",
                            one_line(f"{type(exc).__name__}: {exc}", 300))
            return
        if self.failing_since is not None:
            log.warning("alert figures read from the database again after %.0f s", time.time() - self.failing_since)
            self.failing_since = None

    async def refresh(self, max_wait: float) -> None:
        now = time.monotonic()
        if self._reading is None or self._reading.done():
            self._reading, self._started = asyncio.create_task(self._read()), now
        wait = max_wait - (now - self._started)  # a read already stuck for longer: no wait at all
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reading), wait)

    async def stop(self) -> None:
        if self._reading is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reading, 5)


class AlertsCollector(Collector):
    """Alert state and delivery health, from the last `AlertStatsCache` snapshot."""

    def __init__(self, cache: AlertStatsCache | None) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        st = self.cache.stats if self.cache is not None else None
        if st is None:
            return
        assert self.cache is not None
        yield GaugeMetricFamily("sqm_alert_stats_age_seconds", "age of the alert and delivery figures (read from the "
                                "database; grows while it does not answer)",
                                value=time.time() - self.cache.read_at)
        g = GaugeMetricFamily("sqm_alerts_firing", "firing alerts", labels=["severity"])
        for sev in ("warning", "critical"):
            g.add_metric([sev], st.firing.get(sev, 0))
        yield g
        yield GaugeMetricFamily("sqm_alerts_pending", "alerts waiting out their `for`", value=st.pending)
        yield GaugeMetricFamily("sqm_alert_outbox_depth", "notifications not yet delivered (parked ones apart)",
                                value=sum(st.outbox_depth.values()))
        per = GaugeMetricFamily("sqm_alert_outbox_target_depth", "notifications not yet delivered (parked ones "
                                "apart), by target", labels=["target"])
        for t, n in sorted(st.outbox_depth.items()):
            per.add_metric([t], n)
        yield per
        age = (utcnow() - st.outbox_oldest).total_seconds() if st.outbox_oldest else 0.0
        yield GaugeMetricFamily("sqm_alert_outbox_oldest_age_seconds", "age of the oldest undelivered notification "
                                "(parked ones apart)", value=age)
        parked = GaugeMetricFamily("sqm_alert_outbox_parked", "notifications parked (failed permanently, or for a "
                                   "day): not retried until an admin asks (POST /v1/notifications/retry)",
                                   labels=["target"])
        for t, n in sorted(st.parked.items()):
            parked.add_metric([t], n)
        yield parked
        yield GaugeMetricFamily("sqm_alert_transitions_parked", "transitions of the alerts topic the database "
                                "refused (table parked_transitions)", value=st.parked_transitions)
        attempts = CounterMetricFamily("sqm_alert_delivery_attempts", "delivery attempts", labels=["target"])
        failures = CounterMetricFamily("sqm_alert_delivery_failures", "failed delivery attempts", labels=["target"])
        delivered = CounterMetricFamily("sqm_alert_deliveries", "notifications delivered", labels=["target"])
        for target, (n_attempts, n_failures, n_ok) in sorted(st.delivery.items()):
            attempts.add_metric([target], n_attempts)
            failures.add_metric([target], n_failures)
            delivered.add_metric([target], n_ok)
        yield from (attempts, failures, delivered)
        yield from timing_families(st)


def timing_families(st: AlertStats) -> Iterator[Metric]:
    """Time to acknowledge and time to resolve, per rule (rules are configuration: bounded)."""
    fams = {"ack": HistogramMetricFamily("sqm_alert_ack_seconds", "time from firing (or pending, if acknowledged "
                                         "before it fired) to the acknowledgement, per rule", labels=["rule"]),
            "resolve": HistogramMetricFamily("sqm_alert_resolve_seconds", "time from firing to resolution, per rule",
                                             labels=["rule"])}
    for (rule, measure), (within, count, total) in sorted(st.timing.items()):
        if measure not in fams:
            continue
        cumulative, buckets = 0, []
        for bound, n in zip(RESPONSE_BUCKETS_S, within, strict=True):
            cumulative += n
            buckets.append((f"{bound:g}", cumulative))
        buckets.append(("+Inf", count))
        fams[measure].add_metric([rule], buckets, sum_value=total)
    yield from fams.values()


@dataclass
class IngestMetrics:
    accepted: Counter
    rejected: Counter


def build_registry(view: View, feed: FeedState, agent_limit: int, alert_stats: AlertStatsCache | None = None,
                   *, partitions: int | None = None) -> tuple[CollectorRegistry, IngestMetrics]:
    # no `<name>_created` gauge beside each counter: Prometheus' text format shows it as a family of
    # its own, which dashboards and `promtool check metrics` stumble on
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    registry = CollectorRegistry()
    registry.register(ViewCollector(view, feed, agent_limit))
    registry.register(AlertsCollector(alert_stats))
    if partitions is not None:  # what the health rules compare the workers' assignments with
        Gauge("sqm_partitions", "partitions of the input and scope topics (SQM_PARTITIONS): the source partitions "
              "the KPI workers and the scope partitions the alert workers must hold", registry=registry).set(partitions)
    ingest = IngestMetrics(
        Counter("sqm_ingest_accepted", "events accepted by POST /v1/events", registry=registry),
        Counter("sqm_ingest_rejected", "events refused by POST /v1/events", ["reason"], registry=registry),
    )
    return registry, ingest
