"""Alert lifecycle (docs/api.md "Lifecycle"): one alert per (rule, scope). Pure: no I/O, no clock.

    inactive -> pending (condition true, waiting out `for`) -> firing -> resolved (-> inactive)

`step(rule, state, value, count, now)` returns the next state and the transitions it made. Each
transition becomes an event on the alerts topic and a row in the history. The rules against
flapping:

- `min_count`: a KPI with fewer samples is not judged. A pending alert is dropped; a firing one
  keeps its severity (no data is not good news) until it has gone unjudged for a whole window: by
  then none of the samples that made it fire are left in the window, and it resolves with that
  reason (a night queue whose calls dropped below `min_count` is not critical until morning).
- `for`: the condition must hold for that long before the alert fires; a single good reading while
  pending cancels it, and the alert fires with the severity of its latest reading.
- hysteresis: a firing alert resolves (or steps down from critical) only once the value passes the
  clear level (`clear`, or the threshold moved by `clear_margin`), not when it touches the line.
- a critical alert steps down to warning only once its value has stayed below the critical clear
  level for the rule's `for`: a count that wavers around the critical line (27, 23, 28 calls
  waiting) stays one critical alert instead of a notice every few seconds. Raising is at once.
- a severity change of a firing alert updates the same alert (`severity_changed`), never a second one.

Alert ids are derived from (rule, scope, pending time), so a replay after a crash produces the same
ids and the history and the notifier can drop repeats.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from alerts import templates
from alerts.rules import Rule, Severity
from stream.kpis import KPI_BY_NAME
from stream.labels import LANGS, kpi_label
from stream.windows import WINDOWS

State = Literal["inactive", "pending", "firing"]
UNJUDGED = "too few samples to judge for a whole window (below the rule's min_count)"
Kind = Literal["pending", "cancelled", "firing", "severity_changed", "resolved"]


@dataclass(slots=True)
class AlertState:
    state: State = "inactive"
    severity: Severity | None = None
    alert_id: str | None = None
    since: float | None = None  # pending since
    firing_since: float | None = None
    down_since: float | None = None  # a critical alert's value first below its critical clear level
    unjudged_since: float | None = None  # a firing alert's first reading with too few samples
    seq: int = 0  # the last transition's number: increasing, never reused (see _emit)
    value: float | None = None
    count: int = 0
    # the rule as it was when the alert started: a rule deleted while no worker ran still resolves
    # its alerts with their full context (see ScopeEvaluator.evaluate)
    rule: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AlertState:
        fields: dict[str, Any] = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Transition:
    """What the alerts topic carries for one transition of one alert."""

    event_id: str  # alert_id/seq: unique per transition, stable across replays
    alert_id: str
    kind: Kind
    state: str  # the alert's state after: pending, inactive, firing, resolved
    rule_id: str
    scope: str
    kpi: str
    window: str
    op: str
    severity: Severity | None
    previous_severity: Severity | None
    value: float | None
    count: int
    threshold: float | None
    ts: float
    started_at: float | None  # firing since
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    intervention: str = ""
    runbook_url: str | None = None
    # summary and intervention in other languages ({"zh-CN": {"summary": ..., "intervention": ...}}):
    # the board shows its language's, a notification target the one it names (texts_in)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    reason: str = ""  # why an alert ended other than by its KPI (e.g. its scope has no data any more)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def alert_id_of(rule_id: str, scope: str, since: float) -> str:
    return hashlib.sha1(f"{rule_id}\x00{scope}\x00{since:.3f}".encode()).hexdigest()[:20]


def render(template: str, **kw: Any) -> str:
    """`{scope}`, `{value:.0%}`... filled in; a template error leaves the text as written. Never
    `str.format`: a rule text is data (alerts/templates.py says what it may hold and how far it grows)."""
    return templates.render(template, **kw)


def shown(kpi: str, value: float | None) -> str:
    """A reading as a person reads it in a default summary: ratios as percentages."""
    if value is None:
        return "n/a"
    unit = KPI_BY_NAME[kpi].unit if kpi in KPI_BY_NAME else "count"
    return f"{value:.1%}" if unit == "ratio" else f"{value:.4g}"


def default_summary(kpi: str, scope: str, value: float | None, window: str, op: str, threshold: float | None,
                    lang: str) -> str:
    """The summary of a rule that has none, in `lang`."""
    if lang == "zh-CN":
        return f"{scope} 的{kpi_label(kpi, lang)}为 {shown(kpi, value)}（{window}，{op} {shown(kpi, threshold)}）"
    return f"{kpi} of {scope} is {shown(kpi, value)} over {window} ({op} {shown(kpi, threshold)})"


def texts_of(rule: Rule, kw: dict[str, Any], summary_default: dict[str, str]) -> dict[str, dict[str, str]]:
    """The rule's texts in its other languages, rendered. A rule without a summary gets the default
    one in every language; a rule with a summary in one language only shows that one everywhere."""
    out: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        t = rule.texts.get(lang)
        summary = render(t.summary, **kw) if t and t.summary else "" if rule.summary else summary_default[lang]
        intervention = render(t.intervention, **kw) if t and t.intervention else ""
        if summary or intervention:
            out[lang] = {"summary": summary, "intervention": intervention}
    return out


def texts_in(alert: dict[str, Any], lang: str | None) -> tuple[str, str]:
    """(summary, intervention) of an alert (a transition or a stored alert) in `lang`, each falling
    back to the rule's own text."""
    t = (alert.get("texts") or {}).get(lang or "", {}) if lang else {}
    return (t.get("summary") or alert.get("summary") or "", t.get("intervention") or alert.get("intervention") or "")


def _emit(rule: Rule, scope: str, st: AlertState, kind: Kind, now: float, *,
          previous: Severity | None = None, reason: str = "") -> Transition:
    # A transition id (alert id / seq) is never reused, even when a crash lost the alert's state
    # write after its transition was published: the reloaded state then holds an older seq, and the
    # next transition must still sort after the lost one (the notifier drops a seq it has seen).
    # So seq counts tenths of a second since the alert began, and at least one more than the last.
    st.seq = max(st.seq + 1, int((now - (st.since if st.since is not None else now)) * 10) + 1)
    assert st.alert_id is not None
    sev = st.severity
    state = {"pending": "pending", "cancelled": "inactive", "resolved": "resolved"}.get(kind, "firing")
    threshold = rule.threshold(sev) if sev else None
    kw = {"scope": scope, "value": st.value if st.value is not None else float("nan"), "count": st.count,
          "window": rule.window_label, "kpi": rule.kpi, "severity": sev or "", "threshold": threshold}
    defaults = {lang: default_summary(rule.kpi, scope, st.value, rule.window_label, rule.op, threshold, lang)
                for lang in LANGS}
    return Transition(
        event_id=f"{st.alert_id}/{st.seq}", alert_id=st.alert_id, kind=kind, state=state, rule_id=rule.id,
        scope=scope, kpi=rule.kpi, window=rule.window_label, op=rule.op, severity=sev,
        previous_severity=previous, value=st.value, count=st.count,
        threshold=threshold, ts=now, started_at=st.firing_since, labels=dict(rule.labels),
        summary=render(rule.summary, **kw) if rule.summary else defaults["en"],
        intervention=render(rule.intervention, **kw), runbook_url=rule.runbook_url,
        texts=texts_of(rule, kw, defaults), reason=reason,
    )


def step(rule: Rule, st: AlertState, value: float | None, count: int, now: float,
         scope: str) -> tuple[AlertState, list[Transition]]:
    """Advance one alert with a fresh reading of its KPI. Mutates and returns `st`."""
    out: list[Transition] = []
    judged = value is not None and count >= rule.min_count
    if judged:
        st.value, st.count = value, count
    if not rule.enabled:
        judged, value = False, None
        if st.state == "firing":
            out.append(_emit(rule, scope, st, "resolved", now))
            return AlertState(), out
    level = rule.level(value) if judged and value is not None else None

    if st.state == "inactive":
        if level is None:
            return st, out
        st.state, st.severity, st.since = "pending", level, now
        st.alert_id, st.seq, st.rule = alert_id_of(rule.id, scope, now), 0, rule.to_doc()
        out.append(_emit(rule, scope, st, "pending", now))
        if rule.for_s > 0:
            return st, out
    elif st.state == "pending":
        if level is None:
            # not judged (too few samples, no data) or back to normal: the wait starts over
            out.append(_emit(rule, scope, st, "cancelled", now))
            return AlertState(), out
        # a pending alert fires with the severity of its latest reading: one that went pending as
        # critical and improved while waiting out `for` must not page as critical
        st.severity = level
    if st.state == "pending":
        assert st.since is not None
        if now - st.since >= rule.for_s:
            st.state, st.firing_since = "firing", now
            out.append(_emit(rule, scope, st, "firing", now))
        return st, out

    # firing
    if not judged or value is None:
        window_s = None if rule.live or not rule.enabled else WINDOWS[rule.window]
        if window_s is None:
            return st, out  # keep the last severity: no data is not good news
        if st.unjudged_since is None:
            st.unjudged_since = now
        if now - st.unjudged_since < window_s:
            return st, out
        out.append(_emit(rule, scope, st, "resolved", now, reason=UNJUDGED))
        return AlertState(), out
    st.unjudged_since = None
    assert st.severity is not None
    if level == "critical" and st.severity != "critical":
        prev, st.severity, st.down_since = st.severity, "critical", None
        out.append(_emit(rule, scope, st, "severity_changed", now, previous=prev))
    elif st.severity == "critical" and rule.holds(value, "critical"):
        st.down_since = None
    elif st.severity == "critical":
        if rule.warning is not None and rule.holds(value, "warning"):
            if st.down_since is None:
                st.down_since = now
            if now - st.down_since >= rule.for_s:
                st.severity, st.down_since = "warning", None
                out.append(_emit(rule, scope, st, "severity_changed", now, previous="critical"))
        else:
            out.append(_emit(rule, scope, st, "resolved", now))
            return AlertState(), out
    elif st.severity == "warning" and not rule.holds(value, "warning"):
        out.append(_emit(rule, scope, st, "resolved", now))
        return AlertState(), out
    return st, out



def end(rule: Rule, st: AlertState, now: float, scope: str, reason: str) -> list[Transition]:
    """End an alert for a reason other than its KPI (its scope has no data any more): a firing alert
    resolves, a pending one is cancelled, each transition carrying the reason."""
    if st.state == "inactive":
        return []
    return [_emit(rule, scope, st, "resolved" if st.state == "firing" else "cancelled", now, reason=reason)]
