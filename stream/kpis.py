"""KPI values from a merged accumulator: the formulas of kpis.md, each with its denominator. No I/O.

Every KPI is `(value, count)`; a zero denominator gives `value=None`, never 0.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from stream.folds import Acc

Kpi = tuple[float | None, int]


def _ratio(num: float, den: int) -> Kpi:
    return (num / den if den else None, den)


def _time_ratio(num: float, den: float) -> Kpi:
    """A share of time; its count is the seconds it rests on (whole seconds)."""
    return (num / den if den > 0 else None, int(den))


def _n(n: int) -> Kpi:
    return (float(n), n)


@dataclass(frozen=True, slots=True)
class KpiDef:
    name: str
    compute: Callable[[Acc], Kpi]
    unit: str  # "count", "seconds", "ratio", "score"
    higher_is_better: bool
    help: str


def _nps(a: Acc) -> Kpi:
    return (100.0 * (a.promoters - a.detractors) / a.nps_n if a.nps_n else None, a.nps_n)


KPIS: tuple[KpiDef, ...] = (
    KpiDef("tickets_created", lambda a: _n(a.created), "count", True, "ticket.created events"),
    KpiDef("first_response_mean_s", lambda a: _ratio(a.fr_sum, a.fr_n), "seconds", False,
           "mean ts - created_at over ticket.first_response"),
    KpiDef("first_response_p90_s", lambda a: (a.fr_sketch.quantile(0.9), a.fr_n), "seconds", False,
           "90th percentile of first-response durations (sketch, <= 1 % relative error)"),
    KpiDef("first_response_sla_rate", lambda a: _ratio(a.fr_sla, a.fr_n), "ratio", True,
           "first responses within target(tier) / first responses"),
    KpiDef("resolution_mean_s", lambda a: _ratio(a.res_sum, a.res_n), "seconds", False,
           "mean ts - created_at over ticket.resolved"),
    KpiDef("resolution_p90_s", lambda a: (a.res_sketch.quantile(0.9), a.res_n), "seconds", False,
           "90th percentile of resolution durations"),
    KpiDef("fcr_rate", lambda a: _ratio(a.res_one_contact + a.ended_resolved, a.res_n + a.ended), "ratio", True,
           "(resolved with contacts == 1 + call.ended resolved) / (ticket.resolved + call.ended)"),
    KpiDef("reopen_rate", lambda a: _ratio(a.reopened, a.res_n), "ratio", False,
           "ticket.reopened / ticket.resolved"),
    KpiDef("complaint_rate", lambda a: _ratio(a.complaints, a.created), "ratio", False,
           "ticket.created with is_complaint / ticket.created"),
    KpiDef("complaint_resolved_24h_rate", lambda a: _ratio(a.res_complaint_24h, a.res_complaint), "ratio", True,
           "complaints resolved within 86400 s / complaints resolved"),
    KpiDef("bot_resolution_rate", lambda a: _ratio(a.res_bot, a.res_n), "ratio", True,
           "ticket.resolved by_bot / ticket.resolved"),
    KpiDef("backlog_growth", lambda a: (float(a.created - a.res_n), a.created + a.res_n), "count", False,
           "ticket.created - ticket.resolved in the window (net inflow; > 0: the backlog grows)"),
    KpiDef("calls_offered", lambda a: _n(a.offered), "count", True, "call.offered events"),
    KpiDef("calls_answered", lambda a: _n(a.answered), "count", True, "call.answered events"),
    KpiDef("calls_abandoned", lambda a: _n(a.abandoned), "count", False, "call.abandoned events"),
    KpiDef("service_level", lambda a: _ratio(a.answered_in_sl, a.answered + a.abandoned_long), "ratio", True,
           "answered within threshold / (answered + abandoned after the short-abandon cut-off)"),
    KpiDef("abandonment_rate", lambda a: _ratio(a.abandoned_long, a.answered + a.abandoned_long), "ratio", False,
           "abandoned after the short-abandon cut-off / (answered + those abandoned)"),
    KpiDef("asa_s", lambda a: _ratio(a.wait_sum, a.answered), "seconds", False, "mean wait_s of call.answered"),
    KpiDef("aht_s", lambda a: _ratio(a.handle_sum, a.ended), "seconds", False,
           "mean talk_s + hold_s + wrap_s of call.ended"),
    KpiDef("survey_responses", lambda a: _n(a.surveys), "count", True, "survey.submitted events"),
    KpiDef("csat", lambda a: _ratio(a.csat_ok, a.csat_n), "ratio", True, "responses with csat >= 4 / with csat"),
    KpiDef("nps", _nps, "score", True, "100 x (promoters - detractors) / responses with nps"),
    KpiDef("ces_mean", lambda a: _ratio(a.ces_sum, a.ces_n), "score", False, "mean ces"),
    KpiDef("comments", lambda a: _n(a.comments), "count", True, "survey responses with a comment (voice.md)"),
    KpiDef("negative_comment_rate", lambda a: _ratio(a.comments_negative, a.comments), "ratio", False,
           "comments labelled negative / comments"),
    KpiDef("sentiment_mean", lambda a: _ratio(a.sentiment_pos - a.sentiment_neg, a.comments), "score", True,
           "mean sentiment of the comments, in [-1, 1]"),
    KpiDef("mismatch_rate", lambda a: _ratio(a.comments_mismatch, a.comments), "ratio", False,
           "comments whose label contradicts their scores / comments"),
    KpiDef("occupancy", lambda a: _time_ratio(a.t_on_contact + a.t_acw, a.t_available + a.t_on_contact + a.t_acw),
           "ratio", True, "time on_contact + after_contact_work / time available + on_contact + "
           "after_contact_work (count: those seconds)"),
    KpiDef("away_share", lambda a: _time_ratio(a.t_away, a.t_available + a.t_on_contact + a.t_acw + a.t_away),
           "ratio", False, "time away / time not offline (count: the seconds not offline)"),
)
KPI_BY_NAME = {k.name: k for k in KPIS}

#: windowed KPIs of the topic index (voice.md "Topics"): from the view's topic counts, not an accumulator,
#: and therefore not in the KPI history
TOPIC_KPIS: dict[str, str] = {
    "top_topic_comments": "comments on the scope's most frequent topic in the window (negative and neutral "
                          "comments; count: the scope's negative and neutral comments)",
}

TICKET_KINDS = frozenset({"all", "team", "agent", "channel", "tier"})  # scopes tickets have (no queue)
CALL_KINDS = frozenset({"all", "team", "queue", "channel", "tier"})  # scopes waiting calls have (no agent yet)
AGENT_KINDS = frozenset({"all", "team", "queue"})  # scopes agents count in (workforce.md)
QUEUE_KINDS = frozenset({"queue"})  # staffing is per queue


@dataclass(frozen=True, slots=True)
class LiveDef:
    """A KPI of the live state (not windowed): computed from open tickets or waiting calls now."""

    name: str
    unit: str
    kinds: frozenset[str]  # scope kinds it is reported for
    help: str
    higher_is_better: bool = False


LIVE: tuple[LiveDef, ...] = (
    LiveDef("backlog", "count", TICKET_KINDS, "open tickets now"),
    LiveDef("first_response_overdue", "count", TICKET_KINDS, "open tickets past their first-response due time"),
    LiveDef("first_response_at_risk", "count", TICKET_KINDS,
            "open tickets without a first response within 20 % of their target of the due time"),
    LiveDef("oldest_unanswered_s", "seconds", TICKET_KINDS,
            "age of the oldest open ticket without a first response (count: such tickets)"),
    LiveDef("calls_waiting", "count", CALL_KINDS, "calls offered and not yet answered or abandoned"),
    LiveDef("longest_wait_s", "seconds", CALL_KINDS, "now minus the offer time of the oldest waiting call"),
    LiveDef("agents_staffed", "count", AGENT_KINDS, "agents whose state is not offline", True),
    LiveDef("agents_available", "count", AGENT_KINDS, "agents available for a contact", True),
    LiveDef("agents_on_contact", "count", AGENT_KINDS, "agents on a contact"),
    LiveDef("agents_after_contact_work", "count", AGENT_KINDS, "agents in after-contact work"),
    LiveDef("agents_away", "count", AGENT_KINDS, "agents logged in and not taking contacts (break, lunch, ...)"),
    LiveDef("longest_available_s", "seconds", AGENT_KINDS, "now minus the since of the agent longest available"),
    LiveDef("longest_away_s", "seconds", AGENT_KINDS, "now minus the since of the agent longest away"),
    LiveDef("longest_after_contact_work_s", "seconds", AGENT_KINDS,
            "now minus the since of the agent longest in after-contact work"),
    LiveDef("calls_waiting_unattended", "count", AGENT_KINDS,
            "calls waiting while no agent of the scope is available (0 when one is)"),
    # Erlang C per queue (stream/erlang.py): lambda from calls_offered over 15m, handle time aht_s over 1h
    LiveDef("traffic_erlangs", "count", QUEUE_KINDS, "offered traffic A = lambda x handle time (Erlangs)"),
    LiveDef("required_agents", "count", QUEUE_KINDS, "smallest N > A whose Erlang C service level meets the target"),
    LiveDef("staffing_gap", "count", QUEUE_KINDS, "agents staffed minus away minus required_agents (negative: short)",
            True),
    LiveDef("predicted_service_level", "ratio", QUEUE_KINDS,
            "Erlang C service level with the agents staffed minus away", True),
    # the forecast of the next quarter hour (history/forecast.py, made by the API every minute)
    LiveDef("calls_offered_forecast", "count", QUEUE_KINDS,
            "calls the forecast expects in the current quarter hour (null without a recent forecast)"),
    LiveDef("calls_offered_next", "count", QUEUE_KINDS,
            "calls expected in the next quarter hour (forecast; null without a recent one)"),
    LiveDef("required_agents_next", "count", QUEUE_KINDS,
            "Erlang C's agents for the next quarter hour's forecast calls, at the current handle time"),
    LiveDef("staffing_gap_next", "count", QUEUE_KINDS,
            "agents staffed now minus away minus required_agents_next (negative: short for the next interval)",
            True),
)
LIVE_KPIS = tuple(d.name for d in LIVE)
LIVE_BY_NAME = {d.name: d for d in LIVE}
LOWER_IS_BETTER = frozenset(k.name for k in KPIS if not k.higher_is_better) | \
    frozenset(d.name for d in LIVE if not d.higher_is_better)


def compute(acc: Acc) -> dict[str, Kpi]:
    """Every windowed KPI of kpis.md from one (merged) accumulator."""
    return {k.name: k.compute(acc) for k in KPIS}


def achievement(kpi: str, actual: float | None, target: float) -> float | None:
    """actual / target, or target / actual for lower-is-better KPIs; None when undefined. A
    lower-is-better figure at 0 meets any target of 0 or more (no overdue ticket against a target of
    none is 100 %, not undefined).

    >>> achievement("csat", 0.81, 0.9), achievement("asa_s", 40.0, 20.0)
    (0.9, 0.5)
    >>> achievement("first_response_overdue", 0.0, 0.0), achievement("first_response_overdue", 3.0, 0.0)
    (1.0, 0.0)
    """
    if actual is None:
        return None
    if kpi in LOWER_IS_BETTER:
        if actual <= 0:
            return 1.0 if target >= actual else None
        return target / actual
    return actual / target if target else None


def change(value: float | None, previous: float | None) -> float | None:
    """value - previous, or None when either is unknown."""
    return value - previous if value is not None and previous is not None else None


def ranks(values: list[float | None], *, higher_is_better: bool) -> list[int]:
    """Competition ranks (1 = best; ties share a rank; unknown values last).

    >>> ranks([0.9, None, 0.95, 0.9], higher_is_better=True)
    [2, 4, 1, 2]
    """
    def key(v: float | None) -> float:
        if v is None:
            return float("inf")
        return -v if higher_is_better else v

    order = sorted(key(v) for v in values)
    return [bisect_left(order, key(v)) + 1 for v in values]  # n log n: 2,000 agents are ranked per request
