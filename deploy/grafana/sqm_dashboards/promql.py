"""PromQL of the sqm dashboards: the selectors and the two idioms every KPI panel relies on.

Every API replica serves the same KPI counters (they are read from the workers' state), so:

- a count or a rate is `max by (scope)` over the replicas first, then summed over the selected
  scopes (a `sum` straight over the replicas would count each event once per replica);
- a KPI is a ratio of two such sums over the same range, never an average of per-scope ratios
  (a scope with 3 calls would weigh as much as one with 3,000);
- a zero denominator gives no sample (`/ (den > 0)`), not NaN: the panel shows "No data".

>>> ratio(total(["sqm_kpi_calls_answered_within_threshold_total"], ALL, "$__range"),
...       total(["sqm_kpi_calls_answered_total"], ALL, "$__range"))  # doctest: +NORMALIZE_WHITESPACE
'(sum(max by (scope) (increase(sqm_kpi_calls_answered_within_threshold_total{job=~"$job", scope="all"}[$__range]))))
 / ((sum(max by (scope) (increase(sqm_kpi_calls_answered_total{job=~"$job", scope="all"}[$__range])))) > 0)'
"""

from __future__ import annotations

from collections.abc import Sequence

# Every raw sqm series carries the scrape job; the `job` variable picks one sqm deployment.
JOB = 'job=~"$job"'
ALL: tuple[str, ...] = ('scope="all"',)
RANGE = "$__range"  # stat and table panels: one value over the dashboard's time range
RATE = "$__rate_interval"  # graphs: at least four scrape intervals, whatever the step

# Recording rules of deploy/prometheus/sqm-recording.yml (names fixed by the metrics contract):
# `max by (kind, scope)` over the replicas, so they carry no job label.
RECORDED = {
    "first_response_sla": "kind_scope:sqm_kpi_first_response_sla:ratio_rate1h",
    "first_response_mean": "kind_scope:sqm_kpi_first_response_mean:seconds_rate1h",
    "service_level": "kind_scope:sqm_kpi_service_level:ratio_rate1h",
    "abandonment": "kind_scope:sqm_kpi_abandonment:ratio_rate1h",
    "asa": "kind_scope:sqm_kpi_asa:seconds_rate1h",
    "fcr": "kind_scope:sqm_kpi_first_contact_resolution:ratio_rate1h",
    "csat": "kind_scope:sqm_kpi_csat:ratio_rate1h",
    "nps": "kind_scope:sqm_kpi_nps:score_rate1h",
    "tickets_created": "kind_scope:sqm_kpi_tickets_created:rate5m",
    "calls_offered": "kind_scope:sqm_kpi_calls_offered:rate5m",
}


def selector(metric: str, *matchers: str, job: bool = True) -> str:
    """`metric{job=~"$job", ...}`; recorded series (job=False) have no job label to match."""
    labels = [JOB, *matchers] if job else list(matchers)
    return f"{metric}{{{', '.join(labels)}}}" if labels else metric


def scoped(kind: str, var: str | None = None) -> tuple[str, str]:
    """Matchers of the scopes picked by a dashboard variable: `team:$team` and the like.

    The variables hold names without the `<kind>:` prefix (their regex strips it), and their
    "All" value is `.+`, so `scope=~"team:$team"` matches every team with All selected.
    """
    return f'kind="{kind}"', f'scope=~"{kind}:${var or kind}"'


def counter_by(metric: str, matchers: Sequence[str], by: str, rng: str = RANGE) -> str:
    """A counter's increase over `rng` (its rate over `$__rate_interval`), deduplicated over the
    replicas: one series per value of `by`."""
    fn = "rate" if rng == RATE else "increase"
    return f"max by ({by}) ({fn}({selector(metric, *matchers)}[{rng}]))"


def per_scope(metric: str, matchers: Sequence[str], rng: str, fn: str = "increase") -> str:
    """`fn` of a counter over `rng`, deduplicated over the replicas: one series per scope."""
    return f"max by (scope) ({fn}({selector(metric, *matchers)}[{rng}]))"


def plus(terms: Sequence[str]) -> str:
    """Sum of two series that may be missing: `(a + b) or a or b`.

    /metrics has the counters of a topic only for scopes with events of it (a chat team has no
    call counters), and `a + b` alone would drop such a scope.
    """
    if len(terms) == 1:
        return terms[0]
    a, b = terms
    return f"({a} + {b}) or {a} or {b}"


def total(metrics: Sequence[str], matchers: Sequence[str], rng: str, fn: str = "increase") -> str:
    """Sum of counters over `rng`, pooled over the selected scopes: one label-less series."""
    return plus([f"sum({per_scope(m, matchers, rng, fn)})" for m in metrics])


def by_scope(metrics: Sequence[str], matchers: Sequence[str], rng: str, fn: str = "increase") -> str:
    """Sum of counters over `rng`, one series per scope."""
    return plus([per_scope(m, matchers, rng, fn) for m in metrics])


def ratio(num: str, den: str, scale: str = "") -> str:
    """`num / den`, with no sample where the denominator is 0 (instead of NaN or +Inf)."""
    return f"{scale}({num}) / (({den}) > 0)"


def gauge(metric: str, matchers: Sequence[str], by: str = "scope") -> str:
    """A gauge every replica serves alike: the max over the replicas, one series per `by` (or one)."""
    return f"max by ({by}) ({selector(metric, *matchers)})" if by else f"max({selector(metric, *matchers)})"


def recorded(kpi: str, matchers: Sequence[str]) -> str:
    """A series of the recording rules (see RECORDED)."""
    return selector(RECORDED[kpi], *matchers, job=False)


# Numerator and denominator counters of each KPI (docs/kpis.md); NPS is built apart (a difference).
KPIS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "first_response_sla": (("sqm_kpi_first_responses_within_target_total",), ("sqm_kpi_first_responses_total",)),
    "first_response_mean": (("sqm_kpi_first_response_seconds_total",), ("sqm_kpi_first_responses_total",)),
    "resolution_mean": (("sqm_kpi_resolution_seconds_total",), ("sqm_kpi_tickets_resolved_total",)),
    "fcr": (("sqm_kpi_tickets_resolved_one_contact_total", "sqm_kpi_calls_ended_resolved_total"),
            ("sqm_kpi_tickets_resolved_total", "sqm_kpi_calls_ended_total")),
    "reopen": (("sqm_kpi_tickets_reopened_total",), ("sqm_kpi_tickets_resolved_total",)),
    "complaint": (("sqm_kpi_complaints_created_total",), ("sqm_kpi_tickets_created_total",)),
    "service_level": (("sqm_kpi_calls_answered_within_threshold_total",),
                      ("sqm_kpi_calls_answered_total", "sqm_kpi_calls_abandoned_after_cutoff_total")),
    "abandonment": (("sqm_kpi_calls_abandoned_after_cutoff_total",),
                    ("sqm_kpi_calls_answered_total", "sqm_kpi_calls_abandoned_after_cutoff_total")),
    "asa": (("sqm_kpi_answer_wait_seconds_total",), ("sqm_kpi_calls_answered_total",)),
    "aht": (("sqm_kpi_handle_seconds_total",), ("sqm_kpi_calls_ended_total",)),
    "csat": (("sqm_kpi_csat_satisfied_responses_total",), ("sqm_kpi_csat_responses_total",)),
    "ces": (("sqm_kpi_ces_score_points_total",), ("sqm_kpi_ces_responses_total",)),
    "negative_comments": (("sqm_kpi_comments_negative_total",), ("sqm_kpi_comments_total",)),
    "mismatch": (("sqm_kpi_comments_mismatch_total",), ("sqm_kpi_comments_total",)),
}


def kpi(name: str, matchers: Sequence[str], rng: str = RANGE, *, split: bool = False) -> str:
    """A KPI over `rng` as a ratio of counter increases: pooled over the scopes, or one per scope.

    Over `$__range` the counters are taken with increase(), over `$__rate_interval` with rate():
    the ratio is the same, the function says which kind of panel it is for.
    """
    agg = by_scope if split else total
    fn = "rate" if rng == RATE else "increase"
    if name == "nps":
        num = (f"{agg(['sqm_kpi_nps_promoters_total'], matchers, rng, fn)} - "
               f"{agg(['sqm_kpi_nps_detractors_total'], matchers, rng, fn)}")
        return ratio(num, agg(["sqm_kpi_nps_responses_total"], matchers, rng, fn), scale="100 * ")
    if name == "sentiment":  # the comments' sentiment is counted as its positive and its negative part
        num = (f"{agg(['sqm_kpi_comment_sentiment_positive_total'], matchers, rng, fn)} - "
               f"{agg(['sqm_kpi_comment_sentiment_negative_total'], matchers, rng, fn)}")
        return ratio(num, agg(["sqm_kpi_comments_total"], matchers, rng, fn))
    nums, dens = KPIS[name]
    return ratio(agg(nums, matchers, rng, fn), agg(dens, matchers, rng, fn))


def count(metrics: Sequence[str], matchers: Sequence[str], rng: str = RANGE, *, split: bool = False) -> str:
    """Events counted over `rng` (increase), pooled over the scopes or one series per scope."""
    return (by_scope if split else total)(metrics, matchers, rng)


def per_minute(metrics: Sequence[str], matchers: Sequence[str], *, split: bool = True) -> str:
    """Events per minute over `$__rate_interval`, for graphs."""
    return f"60 * ({(by_scope if split else total)(metrics, matchers, RATE, 'rate')})"
