"""Rule evaluation over the scope-partitioned topic. Pure: records in, transitions and records out.

The worker copies every KPI bucket record and every open-ticket record to the scope topic, on the
partition of each scope it concerns (`stream.scopes.scope_partition`). Partition q of that topic
therefore holds everything needed to compute every KPI of the scopes that hash to q, and the
worker that owns q evaluates the rules for exactly those scopes: evaluation scales with the
workers, like the KPI folds. The alert state of each (rule, scope) is kept on the same partition
(`["a", rule_id, scope]`), so it moves with the partition and survives a restart.

    ev = ScopeEvaluator(bucket_s=60, partitions=6)
    ev.load(q, records)                   # a partition assigned: its records up to now
    touched = ev.apply(q, key, value)     # each new record of partition q
    transitions = ev.evaluate(rules, now=..., only=touched)
    live = ev.live_values()               # the KPI of each pending/firing alert now, when it moved
    records = ev.drain()                  # alert state records to write back to partition q
    census = ev.census(q, now=...)        # the alerts partition q holds (the notifier ends the others)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from alerts.engine import AlertState, Transition, end, step
from alerts.rules import Rule
from stream.folds import Acc
from stream.kpis import KPI_BY_NAME, TOPIC_KPIS, Kpi
from stream.records import AlertKey, Record, SentinelKey, decode_key, encode_key
from stream.scopes import scope_partition
from stream.view import StaffingConfig, View

Touched = dict[int, set[str]]
AlertKeyT = tuple[str, str]  # (rule id, scope)
# A pending or firing alert's live value goes out at most this often (and only when it moved): the
# notifier keeps it for repeat notifications; the API computes its own from the view.
LIVE_EVERY_S = 10.0
SCOPE_LEFT = "the scope has no data any more (its last events left the 24 h window)"
NOT_TRANSITIONS = frozenset({"live", "census"})  # the alerts topic's other kinds of message


def is_transition(message: Mapping[str, object]) -> bool:
    """Whether a message of the alerts topic is a transition (not a live value or a census)."""
    return message.get("kind") not in NOT_TRANSITIONS


@dataclass(frozen=True, slots=True)
class LiveValue:
    """The KPI of a pending or firing alert now (alerts topic, `kind` "live"; no transition)."""

    alert_id: str
    rule_id: str
    scope: str
    value: float | None
    count: int
    ts: float

    def to_json(self) -> dict[str, object]:
        return {"kind": "live", "alert_id": self.alert_id, "rule_id": self.rule_id, "scope": self.scope,
                "value": self.value, "count": self.count, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class Census:
    """The alerts a scope partition holds once its state is loaded (alerts topic, `kind` "census"):
    the notifier ends every alert of the database on that partition's scopes that is not among them
    and began before `ts` (a new broker, a rule deleted while no worker ran, a lost transition)."""

    partition: int
    partitions: int
    alerts: tuple[str, ...]
    ts: float

    def to_json(self) -> dict[str, object]:
        return {"kind": "census", "partition": self.partition, "partitions": self.partitions,
                "alerts": list(self.alerts), "ts": self.ts}


@dataclass
class _Partition:
    view: View
    alerts: dict[AlertKeyT, AlertState] = field(default_factory=dict)
    dirty: set[AlertKeyT] = field(default_factory=set)
    live_sent: dict[AlertKeyT, tuple[float, float | None, int]] = field(default_factory=dict)


class ScopeEvaluator:
    def __init__(self, bucket_s: int, partitions: int, staffing: StaffingConfig | None = None) -> None:
        self.bucket_s = bucket_s
        self.partitions = partitions
        self.staffing = staffing
        self.parts: dict[int, _Partition] = {}
        self.last_rules: dict[str, Rule] = {}  # to resolve the alerts of a rule that was deleted
        self._live: list[LiveValue] = []

    # -- feeding ----------------------------------------------------------------------------
    def holds(self, q: int) -> bool:
        return q in self.parts

    def load(self, q: int, records: Iterable[Record]) -> None:
        part = self.parts[q] = _Partition(View(self.bucket_s, staffing=self.staffing))
        for k, v in records:
            match key := decode_key(k):
                case AlertKey(rule_id, scope) if v is None:
                    part.alerts.pop((rule_id, scope), None)
                case AlertKey(rule_id, scope) if v is not None:
                    part.alerts[(rule_id, scope)] = AlertState.from_json(orjson.loads(v))
                case None | SentinelKey():
                    pass
                case _:
                    part.view.apply_key(key, v)

    def forget(self, qs: Iterable[int]) -> None:
        for q in qs:
            self.parts.pop(q, None)

    def apply(self, q: int, kraw: bytes | None, vraw: bytes | None) -> set[str]:
        """Apply one record of partition q; returns the scopes of q whose KPIs it may change."""
        key = decode_key(kraw)
        if key is None or isinstance(key, AlertKey | SentinelKey):
            return set()  # our own alert state (already in memory), recovery sentinels
        n = self.partitions
        return {s for s in self.parts[q].view.apply_key(key, vraw) if scope_partition(s, n) == q}

    # -- evaluating -------------------------------------------------------------------------
    def scopes_of(self, q: int, *, now: float) -> list[str]:
        return [s for s in self.parts[q].view.scopes(now=now) if scope_partition(s, self.partitions) == q]

    def evaluate(self, rules: Mapping[str, Rule], *, now: float, only: Touched | None = None) -> list[Transition]:
        """Step every (rule, scope) of the held partitions (or only the touched scopes, plus the
        alerts that are pending or firing) and return the transitions made."""
        for rid, r in rules.items():
            self.last_rules[rid] = r
        out: list[Transition] = []
        for q, part in self.parts.items():
            scopes = set(self.scopes_of(q, now=now)) if only is None else set(only.get(q, ()))
            cache: dict[tuple[str, str], Acc] = {}
            live_cache: dict[str, dict[str, Kpi]] = {}  # scope -> its live KPIs (staffing runs Erlang C)
            view = part.view
            pairs = {(r.id, s) for r in rules.values() for s in scopes if r.matches(s)}
            pairs.update(k for k, st in part.alerts.items() if st.state != "inactive")
            for rid, scope in sorted(pairs):
                rule = rules.get(rid)
                if rule is None:  # deleted: resolve what it fired, with the rule it fired under
                    last = self.last_rules.get(rid) or _remembered(part.alerts.get((rid, scope)))
                    if last is None:  # state from a version that did not keep the rule
                        part.alerts.pop((rid, scope), None)
                        part.dirty.add((rid, scope))
                        continue
                    rule = last.model_copy(update={"enabled": False})
                value: float | None
                count: int
                if not rule.enabled:
                    value, count = None, 0
                elif rule.live:
                    live = live_cache.get(scope)
                    if live is None:
                        live = live_cache[scope] = view.live_kpis(scope, now=now)
                    value, count = live.get(rule.kpi, (None, 0))
                elif rule.kpi in TOPIC_KPIS:
                    value, count = view.kpi(scope, rule.kpi, rule.window, now=now)
                else:
                    ck = (scope, rule.window)
                    acc = cache.get(ck)
                    if acc is None:
                        acc = cache[ck] = view.window_acc(scope, rule.window, now=now)
                    value, count = KPI_BY_NAME[rule.kpi].compute(acc)  # only the KPI the rule needs
                st = part.alerts.get((rid, scope)) or AlertState()
                if st.state != "inactive" and not view.has_scope(scope, now=now):
                    ts, st = end(rule, st, now, scope, SCOPE_LEFT), AlertState()
                else:
                    st, ts = step(rule, st, value, count, now, scope)
                if ts:
                    part.dirty.add((rid, scope))
                if st.state == "inactive":
                    part.alerts.pop((rid, scope), None)
                    part.live_sent.pop((rid, scope), None)
                else:
                    part.alerts[(rid, scope)] = st
                    self._note_live(part, (rid, scope), st, value, count, now, told=bool(ts))
                out.extend(ts)
        return out

    def _note_live(self, part: _Partition, key: AlertKeyT, st: AlertState, value: float | None, count: int,
                   now: float, *, told: bool) -> None:
        """Queue the alert's live value when it moved and the last one is LIVE_EVERY_S old, and once
        after a load (a transition carries it already)."""
        last = part.live_sent.get(key)
        if not told and last is not None and ((last[1], last[2]) == (value, count) or now - last[0] < LIVE_EVERY_S):
            return
        part.live_sent[key] = (now, value, count)
        if not told:
            assert st.alert_id is not None
            self._live.append(LiveValue(st.alert_id, key[0], key[1], value, count, now))

    def live_values(self) -> list[LiveValue]:
        """Live values queued since the last call."""
        out, self._live = self._live, []
        return out

    def census(self, q: int, *, now: float, transitions: Iterable[Transition] = ()) -> Census:
        """The alerts partition q holds now, and those that made a transition at `now` (an alert that
        resolved in this evaluation is ended by its own transition, not by the census)."""
        part = self.parts[q]
        ids = {st.alert_id for st in part.alerts.values() if st.state != "inactive" and st.alert_id}
        ids.update(t.alert_id for t in transitions if scope_partition(t.scope, self.partitions) == q)
        return Census(q, self.partitions, tuple(sorted(ids)), now)

    def drain(self) -> list[tuple[int, Record]]:
        """Alert state records changed since the last drain, as (partition, record)."""
        out: list[tuple[int, Record]] = []
        for q, part in self.parts.items():
            for rid, scope in part.dirty:
                st = part.alerts.get((rid, scope))
                out.append((q, (encode_key(AlertKey(rid, scope)), orjson.dumps(st.to_json()) if st else None)))
            part.dirty.clear()
        return out

    def active(self) -> dict[str, int]:
        """Firing alerts by severity in the held partitions."""
        out = {"warning": 0, "critical": 0}
        for part in self.parts.values():
            for st in part.alerts.values():
                if st.state == "firing" and st.severity:
                    out[st.severity] += 1
        return out


def _remembered(st: AlertState | None) -> Rule | None:
    if st is None or st.rule is None:
        return None
    try:
        return Rule.model_validate(st.rule)
    except ValueError:  # pydantic's ValidationError: a rule document of another version
        return None
