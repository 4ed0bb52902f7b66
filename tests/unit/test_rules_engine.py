"""Rules and the alert lifecycle, without a broker: validation, `for`, min_count, hysteresis, flapping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import AlertState, Transition, step
from alerts.rules import DEFAULT_RULE_FILE, Rule, load_rule_file, parse_duration, parse_rules


def rule(**kw: object) -> Rule:
    base: dict[str, object] = {"id": "sl", "kpi": "service_level", "scope": "team:*", "window": "5m", "op": "<",
                               "warning": 0.8, "critical": 0.6}
    base.update(kw)
    return Rule.model_validate(base)


def run(r: Rule, readings: list[tuple[float, float | None, int]], scope: str = "team:tech") -> list[Transition]:
    st_, out = AlertState(), []
    for now, value, count in readings:
        st_, ts = step(r, st_, value, count, now, scope)
        out.extend(ts)
    return out


def kinds(ts: list[Transition]) -> list[str]:
    return [f"{t.kind}:{t.severity}" for t in ts]


def test_default_rule_file_loads_every_rule() -> None:
    good, bad = load_rule_file(DEFAULT_RULE_FILE)
    assert bad == []
    ids = {r.id for r in good}
    assert {"agent-fcr-low", "vip-first-response-sla", "service-level-low", "abandonment-high", "csat-low",
            "nps-low", "backlog-growth", "first-response-at-risk", "first-response-overdue"} <= ids
    fcr = next(r for r in good if r.id == "agent-fcr-low")
    assert (fcr.kpi, fcr.scope, fcr.window, fcr.min_count, fcr.for_s) == ("fcr_rate", "agent:*", "24h", 20, 300.0)
    assert "mentor" in fcr.intervention


@pytest.mark.parametrize(("doc", "where"), [
    ({"kpi": "nope"}, "kpi: unknown KPI 'nope'"),
    ({"scope": "team"}, "scope: not a scope selector"),
    ({"window": "2h"}, "window: unknown window '2h'"),
    ({"op": "=="}, "op: Input should be"),
    ({"warning": None, "critical": None}, "needs a warning or a critical"),
    ({"warning": 0.6, "critical": 0.8}, "critical (0.8) must be beyond warning (0.6)"),
    ({"clear": 0.7}, "clear (0.7) must be on the healthy side"),
    ({"for": "soon"}, "not a duration: 'soon'"),
    ({"labels": {"severity": "x"}}, "label 'severity' is set by the engine"),
    ({"min_count": -1}, "min_count: Input should be greater than or equal to 0"),
    ({"extra_field": 1}, "extra_field: Extra inputs are not permitted"),
])
def test_bad_rules_are_refused_with_where_and_what(doc: dict[str, object], where: str) -> None:
    base = {"id": "r1", "kpi": "service_level", "scope": "team:*", "op": "<", "warning": 0.8, "critical": 0.6}
    good, bad = parse_rules({"rules": [{"id": "ok", "kpi": "csat", "op": "<", "warning": 0.8},
                                       {**base, **doc}]}, "rules.yaml")
    assert [r.id for r in good] == ["ok"], "one bad rule never stops the others"
    assert len(bad) == 1
    text = str(bad[0])
    assert text.startswith("rules.yaml: rules[1] (r1): ")
    assert where in text, text


def test_duplicate_ids_and_non_mapping_entries() -> None:
    good, bad = parse_rules({"rules": [{"id": "a", "kpi": "csat", "op": "<", "warning": 0.8},
                                       {"id": "a", "kpi": "nps", "op": "<", "warning": 10}, "oops"]}, "f")
    assert [r.id for r in good] == ["a"]
    assert ["duplicate id 'a'" in str(b) for b in bad] == [True, False]
    assert "a rule is a mapping" in str(bad[1])
    assert parse_rules(["x"], "f")[1][0].errors == ["the file must be a mapping with a 'rules' list"]


def test_durations() -> None:
    assert [parse_duration(v) for v in ("90s", "5m", "1.5h", "1d", 30, "250ms", "45")] == \
        [90, 300, 5400, 86400, 30, 0.25, 45]
    with pytest.raises(ValueError):
        parse_duration("-1m")


def test_scope_selector() -> None:
    r = rule(scope="agent:*")
    assert r.matches("agent:a-01") and not r.matches("team:a") and not r.matches("all")
    assert rule(scope="team:tech").matches("team:tech") and not rule(scope="team:tech").matches("team:t")


def test_for_waits_then_fires_and_a_good_reading_cancels_pending() -> None:
    r = rule(for_s=30)
    out = run(r, [(0, 0.75, 50), (10, 0.74, 50), (29, 0.7, 50), (30, 0.7, 50)])
    assert kinds(out) == ["pending:warning", "firing:warning"]
    assert out[1].ts == 30 and out[1].started_at == 30 and out[1].threshold == 0.8
    out = run(r, [(0, 0.75, 50), (20, 0.85, 50), (40, 0.75, 50), (60, 0.75, 50), (70, 0.75, 50)])
    assert kinds(out) == ["pending:warning", "cancelled:warning", "pending:warning", "firing:warning"]
    assert out[0].alert_id != out[2].alert_id


def test_a_pending_alert_fires_with_the_severity_of_its_latest_reading() -> None:
    r = rule(for_s=300, clear_margin=0.03)  # warning < 0.8, critical < 0.6
    # pending as critical, improves to warning level while waiting out `for`: fires as a warning,
    # no critical page followed by a step down
    out = run(r, [(0, 0.54, 50), (100, 0.58, 50), (300, 0.62, 50), (301, 0.62, 50)])
    assert kinds(out) == ["pending:critical", "firing:warning"]
    assert out[1].threshold == 0.8
    # and the other way: pending as a warning, worse while waiting: fires as critical
    out = run(r, [(0, 0.7, 50), (200, 0.5, 50), (300, 0.5, 50)])
    assert kinds(out) == ["pending:warning", "firing:critical"]


def test_severity_change_updates_the_same_alert_and_resolves_once() -> None:
    r = rule(clear_margin=0.05)
    out = run(r, [(0, 0.75, 50), (5, 0.55, 50), (10, 0.62, 50), (15, 0.66, 50), (20, 0.84, 50), (25, 0.86, 50)])
    assert kinds(out) == ["pending:warning", "firing:warning", "severity_changed:critical",
                          "severity_changed:warning", "resolved:warning"]
    assert len({t.alert_id for t in out}) == 1
    seqs = [int(t.event_id.split("/")[1]) for t in out]
    assert seqs == sorted(set(seqs)), "transition numbers increase and are never reused"
    assert out[2].previous_severity == "warning" and out[3].previous_severity == "critical"
    assert out[-1].state == "resolved" and out[-1].ts == 25


def test_a_critical_alert_steps_down_only_after_for() -> None:
    """calls_waiting wavering around the critical line (25, clear margin 2) stays one critical alert;
    it steps down once below 23 for the rule's 30 s, and a count back above the line raises it at once."""
    r = Rule.model_validate({"id": "cw", "kpi": "calls_waiting", "scope": "all", "op": ">", "warning": 10,
                             "critical": 25, "clear_margin": 2, "for": "30s"})
    waver = [(0, 27, 0), (30, 27, 0), (35, 22, 0), (40, 28, 0), (45, 21, 0), (50, 27, 0), (55, 22, 0), (60, 26, 0)]
    out = run(r, waver, scope="all")
    assert kinds(out) == ["pending:critical", "firing:critical"], kinds(out)
    out = run(r, [*waver, (65, 20, 0), (80, 21, 0), (94, 22, 0), (95, 18, 0), (100, 30, 0)], scope="all")
    assert kinds(out) == ["pending:critical", "firing:critical", "severity_changed:warning",
                          "severity_changed:critical"], kinds(out)
    assert [t.ts for t in out[2:]] == [95, 100]


def test_min_count_no_alert_on_a_handful_and_firing_keeps_without_data() -> None:
    r = rule(min_count=20)
    assert run(r, [(0, 0.1, 3), (10, 0.0, 19)]) == []
    out = run(r, [(0, 0.5, 30), (10, None, 0), (20, 0.9, 5), (30, 0.9, 25)])
    assert kinds(out) == ["pending:critical", "firing:critical", "resolved:critical"]
    assert out[-1].ts == 30


def test_a_firing_alert_unjudged_for_a_whole_window_resolves_with_the_reason() -> None:
    """A night queue: the 5 min window held 30 calls when the alert fired, then fewer than min_count.
    It keeps its severity while samples that made it fire may still be in the window, and resolves once
    it has gone unjudged for the window's 300 s; a judged reading in between starts the wait over."""
    r = rule(min_count=20)
    readings = [(0, 0.5, 30), (60, 0.9, 12), (200, 0.9, 9), (330, 0.5, 21), (400, 0.9, 15), (699, 1.0, 8)]
    out = run(r, readings)
    assert kinds(out) == ["pending:critical", "firing:critical"]
    out = run(r, [*readings, (700, 1.0, 8)])
    assert kinds(out) == ["pending:critical", "firing:critical", "resolved:critical"]
    assert out[-1].ts == 700 and "min_count" in out[-1].reason
    live = Rule.model_validate({"id": "cw", "kpi": "calls_waiting", "scope": "all", "op": ">", "warning": 10})
    assert kinds(run(live, [(0, 12, 0), (10, None, 0), (5000, None, 0)], scope="all")) == \
        ["pending:warning", "firing:warning"], "a live KPI has no window: no data stays no news"


def test_clear_absolute_level() -> None:
    r = rule(warning=0.8, critical=None, clear=0.9)
    out = run(r, [(0, 0.79, 50), (1, 0.85, 50), (2, 0.89, 50), (3, 0.9, 50)])
    assert kinds(out) == ["pending:warning", "firing:warning", "resolved:warning"]


def test_greater_than_rules_and_live_kpis() -> None:
    r = Rule.model_validate({"id": "risk", "kpi": "first_response_at_risk", "scope": "tier:*", "op": ">",
                             "warning": 0, "critical": 5})
    assert r.live and r.window_label == "live"
    out = run(r, [(0, 0, 0), (1, 2, 2), (2, 6, 6), (3, 0, 0)], scope="tier:vip")
    assert kinds(out) == ["pending:warning", "firing:warning", "severity_changed:critical", "resolved:critical"]
    assert out[1].summary  # a default summary when the rule has none


def test_summary_and_intervention_templates() -> None:
    r = rule(summary="SL of {scope} is {value:.0%} ({count} calls)", intervention="Open overflow for {scope}",
             critical=None)
    t = run(r, [(0, 0.5, 40)])[1]
    assert t.summary == "SL of team:tech is 50% (40 calls)"
    assert t.intervention == "Open overflow for team:tech"
    with pytest.raises(ValueError, match=r"field \{nope\} is not one of"):
        rule(summary="{nope}")  # refused at save (alerts/templates.py) ...
    # ... and one that reaches a worker anyway renders as written
    assert run(rule().model_copy(update={"summary": "{nope}"}), [(0, 0.5, 40)])[0].summary == "{nope}"


def test_disabling_a_rule_resolves_its_firing_alert() -> None:
    r = rule()
    st_, _ = step(r, AlertState(), 0.5, 50, 0, "team:x")
    assert st_.state == "firing"
    st_, out = step(r.model_copy(update={"enabled": False}), st_, 0.5, 50, 1, "team:x")
    assert kinds(out) == ["resolved:critical"] and st_.state == "inactive"


def test_replay_gives_the_same_ids() -> None:
    r = rule(for_s=5)
    readings = [(100.0, 0.7, 40), (106.0, 0.5, 40), (200.0, 0.95, 40)]
    assert [t.event_id for t in run(r, readings)] == [t.event_id for t in run(r, readings)]


def test_state_round_trips_through_json() -> None:
    st_, _ = step(rule(for_s=60), AlertState(), 0.7, 40, 5.0, "team:x")
    assert AlertState.from_json(st_.to_json()) == st_


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-0.03, max_value=0.03), min_size=20, max_size=200))
def test_no_flapping_on_a_kpi_that_wobbles_around_the_line(noise: list[float]) -> None:
    """A value wobbling within +-3 points of the warning line fires at most once and never resolves,
    because the clear level is 5 points past the line."""
    r = rule(critical=None, clear_margin=0.05, for_s=0)
    out = run(r, [(float(i), 0.8 + n, 100) for i, n in enumerate(noise)])
    fired = [t for t in out if t.kind == "firing"]
    assert len(fired) <= 1
    assert not [t for t in out if t.kind == "resolved"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.integers(0, 60)), min_size=1, max_size=80))
def test_lifecycle_invariants(readings: list[tuple[float, int]]) -> None:
    r = rule(for_s=3, min_count=10, clear_margin=0.02)
    st_ = AlertState()
    for i, (v, n) in enumerate(readings):
        before = st_.state
        st_, out = step(r, st_, v, n, float(i), "team:x")
        for t in out:
            assert not math.isnan(t.ts)
            if t.kind in ("firing", "severity_changed"):
                assert t.severity is not None and t.threshold is not None
        if before == "inactive" and out:
            assert out[0].kind == "pending"
        if st_.state == "firing":
            assert st_.firing_since is not None and st_.severity in ("warning", "critical")
        if out and out[-1].kind in ("resolved", "cancelled"):
            assert st_ == AlertState()


def test_a_live_kpi_is_refused_on_a_scope_kind_that_has_no_such_state() -> None:
    good, bad = parse_rules({"rules": [
        {"id": "waiting", "kpi": "calls_waiting", "scope": "queue:*", "op": ">", "warning": 10},
        {"id": "agent-waiting", "kpi": "calls_waiting", "scope": "agent:*", "op": ">", "warning": 10},
        {"id": "oldest", "kpi": "oldest_unanswered_s", "scope": "tier:vip", "op": ">", "warning": 900}]}, "r.yaml")
    assert [r.id for r in good] == ["waiting", "oldest"]
    assert "calls_waiting is not kept for agent scopes" in bad[0].errors[0]


@pytest.mark.parametrize(("field", "value"), [
    ("labels", {"team_lead": "x\u0000"}), ("labels", {"owner": "a\nb"}), ("summary", "line\u2028break"),
    ("summary", "two\nlines"), ("intervention", "nul\u0000"), ("runbook_url", "https://x/\r\nX-Evil: 1"),
    ("scope", "team:x\u0000"), ("scope", "team:a\u202eb"), ("scope", "team: padded")])
def test_text_that_reaches_notifications_refuses_control_characters(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        rule(**{field: value})


def test_interventions_may_span_lines_and_names_may_be_any_script() -> None:
    r = rule(intervention="Call the lead.\nThen open a bridge.", labels={"team_lead": "王芳 😀"},
             summary="<!channel> & *bold* stay data", scope="team:客服")
    assert r.labels["team_lead"] == "王芳 😀" and "\n" in r.intervention


def test_a_transition_id_is_never_reused_after_a_lost_state_write() -> None:
    """The worker published `severity_changed` but died before writing the alert's state: the reloaded
    state is the one before it. The next transition must not reuse the lost one's id (the notifier
    would drop it as a replay and the alert would stay firing in the database forever)."""
    r = rule(scope="team:x", **{"for": 0})
    st, out = step(r, AlertState(), 0.7, 50, 1000.0, "team:x")  # pending + firing (warning)
    saved = AlertState.from_json(st.to_json())
    st, lost = step(r, st, 0.5, 50, 1030.0, "team:x")  # critical: published, state write lost
    assert [t.kind for t in lost] == ["severity_changed"]
    again, after = step(r, saved, 0.95, 50, 1045.0, "team:x")  # restarted from the saved state: recovered
    assert [t.kind for t in after] == ["resolved"]
    seen = {t.event_id for t in out + lost}
    assert after[0].event_id not in seen
    assert int(after[0].event_id.split("/")[1]) > int(lost[0].event_id.split("/")[1])
