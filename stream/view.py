"""The read model: every worker's state records merged into one view of all partitions. Pure.

The API feeds it the records of the state topic (all partitions, whichever worker wrote them) and
asks it for KPI values. Per key it keeps the value with the highest watermark, so a late write from
a worker that lost a partition never rolls a figure back.

    view = View(bucket_s=60)
    view.apply(key_bytes, value_bytes)      # for every state record
    view.kpis("team:billing", "1h", now=time.time())
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from stream.agents import COUNTED, TIME_FIELD, Agent, AgentCounts, AgentIndex, agent_seconds
from stream.calls import Call, CallIndex, Waiting
from stream.caps import DEFAULT_CAPS, OTHER
from stream.erlang import Staffing, required_agents, staffing
from stream.folds import FIELDS, IX, Acc
from stream.kpis import AGENT_KINDS, CALL_KINDS, KPI_BY_NAME, LIVE_BY_NAME, TICKET_KINDS, TOPIC_KPIS, Kpi, compute
from stream.records import (
    AgentKey,
    BucketKey,
    BucketValue,
    CallKey,
    Comment,
    CommentKey,
    Counters,
    CountersKey,
    ForecastKey,
    ForecastValue,
    Heartbeat,
    HeartbeatKey,
    Key,
    TicketKey,
    TopicBucket,
    TopicKey,
    TotalKey,
    TotalValue,
    decode_key,
)
from stream.scopes import kind_of, split_scope
from stream.tickets import AT_RISK_SHARE, LiveCounts, LiveIndex, Ticket
from stream.voice import topic_name
from stream.windows import LONGEST, WINDOWS, bucket_of, window_start_bucket

TOPIC_EXAMPLES = 3  # example comments per topic (voice.md)
TOPICS_KEPT_S = 2 * LONGEST  # the longest window and the one before it (a topic's change)


@dataclass(slots=True)
class _TopicCounts:
    comments: int = 0
    nn: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, comments: int, nn: int, counts: Mapping[str, int]) -> None:
        self.comments += comments
        self.nn += nn
        mine = self.counts
        for t, n in counts.items():
            mine[t] = mine.get(t, 0) + n

    def merge(self, other: _TopicCounts) -> None:
        self.add(other.comments, other.nn, other.counts)


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of a scope's negative and neutral comments in a window (voice.md "Topics")."""

    key: str
    count: int
    share: float | None  # count / the scope's negative and neutral comments in the window
    change: int | None  # count minus the previous window's; None when the previous window had no comment
    examples: tuple[Comment, ...]

    def name(self, language: str) -> str:
        return topic_name(self.key, language)


@dataclass(frozen=True)
class StaffingConfig:
    """What Erlang C needs besides the view (docs/workforce.md "Staffing"): the handle time while a
    queue has no call.ended in the last hour, and each queue's service-level threshold and target."""

    default_handle_s: float = 300.0
    thresholds: Mapping[str, float] = field(default_factory=dict)  # queue -> T (the KPI workers' setting)
    default_threshold_s: float = 20.0
    targets: Mapping[str, float] = field(default_factory=dict)  # queue -> SL* (a service_level target)
    default_target: float = 0.80

    def threshold(self, queue: str) -> float:
        return self.thresholds.get(queue, self.default_threshold_s)

    def target(self, queue: str) -> float:
        return self.targets.get(queue, self.default_target)


FORECAST_FRESH_S = 1200  # a forecast older than this is not used (its maker stopped)
QUARTER = 900
RECENT_S = 120  # buckets this recent are merged per query instead of cached (late events change them)


@dataclass(slots=True)
class _Contribution:
    wm: int
    acc: Acc


class View:
    def __init__(self, bucket_s: int, caps: dict[str, int] | None = None,
                 staffing: StaffingConfig | None = None) -> None:
        self.bucket_s = bucket_s
        self.staffing_cfg = staffing or StaffingConfig()
        self.caps = dict(DEFAULT_CAPS if caps is None else caps)
        # scope -> bucket -> (topic, partition) -> contribution
        self._buckets: dict[str, dict[int, dict[tuple[str, int], _Contribution]]] = defaultdict(dict)
        self._merged: dict[tuple[str, int], Acc] = {}
        # (scope, window) -> (first bucket, last bucket, merged Acc) of the window's closed buckets,
        # so that a 24 h window costs one merge per query instead of 1440 (see window_acc)
        self._closed: dict[tuple[str, str], tuple[int, int, Acc]] = {}
        self.tickets: dict[tuple[int, str], Ticket] = {}
        self.counters: dict[tuple[str, int], Counters] = {}
        # scope -> (topic, partition) -> the monotonic KPI counters of that source partition (TotalValue)
        self._totals: dict[str, dict[tuple[str, int], TotalValue]] = defaultdict(dict)
        self.workers: dict[str, Heartbeat] = {}
        self.comments: dict[tuple[int, str], Comment] = {}
        # scope -> bucket -> partition -> its comments' topics (records.TopicBucket)
        self._topics: dict[str, dict[int, dict[int, TopicBucket]]] = defaultdict(dict)
        # (scope, window, "now" | "before") -> (first, last, counts) of settled topic buckets (see _topic_window)
        self._topics_closed: dict[tuple[str, str, str], tuple[int, int, _TopicCounts]] = {}
        self.records = 0
        self._live = LiveIndex()
        self._calls = CallIndex()
        self._waiting: dict[tuple[int, str], Call] = {}
        self.agents: dict[tuple[int, str], Agent] = {}
        self._agents = AgentIndex()
        self._by_name: dict[str, Agent] = {}  # agent name -> its record (the agent: scope's time in state)
        self.forecasts: dict[tuple[str, str], ForecastValue] = {}  # (scope, kpi) -> the latest forecast

    # -- feeding --------------------------------------------------------------------------
    def apply(self, kraw: bytes | None, vraw: bytes | None) -> tuple[str, ...]:
        """Apply one state record; returns the scopes whose figures it may change (a ticket record:
        the scopes the ticket left as well as those it is in)."""
        return self.apply_key(decode_key(kraw), vraw)

    def apply_key(self, key: Key | None, vraw: bytes | None) -> tuple[str, ...]:
        """`apply` for a key already decoded."""
        if key is None:
            return ()
        self.records += 1
        match key:
            case BucketKey(topic, p, scope, b):
                return self._apply_bucket(topic, p, scope, b, vraw)
            case TicketKey(p, tid):
                return self._apply_ticket((p, tid), vraw)
            case CallKey(p, cid):
                return self._apply_call((p, cid), vraw)
            case AgentKey(p, name):
                return self._apply_agent((p, name), vraw)
            case CommentKey(p, sid):
                if vraw is None:
                    self.comments.pop((p, sid), None)
                else:
                    m = Comment.from_bytes(vraw)
                    cur_m = self.comments.get((p, sid))
                    if m.read and (cur_m is None or m.wm >= cur_m.wm):  # not the previous version's
                        self.comments[(p, sid)] = m
                return ()
            case TopicKey(p, scope, b):
                per_b = self._topics[scope].setdefault(b, {})
                if vraw is None:
                    per_b.pop(p, None)
                    if not per_b:
                        del self._topics[scope][b]
                else:
                    tv = TopicBucket.from_bytes(vraw)
                    held_t = per_b.get(p)
                    if held_t is not None and tv.wm < held_t.wm:
                        return ()
                    per_b[p] = tv
                for w in WINDOWS:
                    for part in ("now", "before"):
                        tc = self._topics_closed.get((scope, w, part))
                        if tc is not None and tc[0] <= b <= tc[1]:
                            del self._topics_closed[(scope, w, part)]  # a late comment changed a settled bucket
                return (scope,)
            case CountersKey(topic, p) if vraw is not None:
                c = Counters.from_bytes(vraw)
                cur = self.counters.get((topic, p))
                if cur is None or c.wm >= cur.wm:
                    self.counters[(topic, p)] = c
            case TotalKey(topic, p, scope) if vraw is not None:
                total = TotalValue.from_bytes(vraw)
                per = self._totals[scope]
                held = per.get((topic, p))
                if held is None or total.wm >= held.wm:  # a zombie's late write never rolls a total back
                    per[(topic, p)] = total
            case HeartbeatKey(worker) if vraw is not None:
                self.workers[worker] = Heartbeat.from_bytes(vraw)
            case ForecastKey(scope, kpi):
                if vraw is None:
                    self.forecasts.pop((scope, kpi), None)
                    return (scope,)
                f = ForecastValue.from_bytes(vraw)
                made = self.forecasts.get((scope, kpi))
                if made is None or f.made >= made.made:
                    self.forecasts[(scope, kpi)] = f
                return (scope,)
        return ()

    def _apply_bucket(self, topic: str, p: int, scope: str, b: int, vraw: bytes | None) -> tuple[str, ...]:
        per = self._buckets[scope].setdefault(b, {})
        if vraw is None:
            per.pop((topic, p), None)
            if not per:
                del self._buckets[scope][b]
        else:
            v = BucketValue.from_bytes(vraw)
            cur = per.get((topic, p))
            if cur is not None and v.wm < cur.wm:
                return ()
            per[(topic, p)] = _Contribution(v.wm, v.acc)
        self._merged.pop((scope, b), None)
        for w in WINDOWS:
            c = self._closed.get((scope, w))
            if c is not None and c[0] <= b <= c[1]:
                del self._closed[(scope, w)]  # a late event changed a closed bucket
        return (scope,)

    def _apply_ticket(self, k: tuple[int, str], vraw: bytes | None) -> tuple[str, ...]:
        old = self.tickets.get(k)
        if vraw is None:
            if old is None:
                return ()
            del self.tickets[k]
            self._live.replace(old, None)
            return tuple(old.scopes())
        new = Ticket.from_bytes(vraw)
        if old is not None and new.wm < old.wm:
            return ()
        self.tickets[k] = new
        self._live.replace(old, new)
        return tuple(new.scopes()) if old is None else tuple({*old.scopes(), *new.scopes()})

    def _apply_call(self, k: tuple[int, str], vraw: bytes | None) -> tuple[str, ...]:
        old = self._waiting.get(k)
        new = Call.from_bytes(vraw) if vraw is not None else None
        which = new or old
        if which is None or (new is not None and old is not None and new.wm < old.wm):
            return ()
        if new is None:
            del self._waiting[k]
        else:
            self._waiting[k] = new
        self._calls.replace(old, new)
        return tuple(which.scopes())

    def _apply_agent(self, k: tuple[int, str], vraw: bytes | None) -> tuple[str, ...]:
        old = self.agents.get(k)
        new = Agent.from_bytes(vraw) if vraw is not None else None
        which = new or old
        if which is None or (new is not None and old is not None and new.wm < old.wm):
            return ()
        if new is None:
            del self.agents[k]
            self._by_name.pop(k[1], None)
        else:
            self.agents[k] = new
            self._by_name[k[1]] = new
        self._agents.replace(k[1], old, new)
        scopes = set(which.scopes(k[1]))
        if old is not None:
            scopes.update(old.scopes(k[1]))
        return tuple(scopes)

    def expire(self, *, now: float) -> None:
        oldest = bucket_of(now - LONGEST, self.bucket_s)
        for scope, buckets in list(self._buckets.items()):
            for b in [b for b in buckets if b < oldest]:
                del buckets[b]
                self._merged.pop((scope, b), None)
            if not buckets:
                del self._buckets[scope]
                for w in WINDOWS:
                    self._closed.pop((scope, w), None)
        oldest_topic = bucket_of(now - TOPICS_KEPT_S, self.bucket_s) - self.bucket_s  # 2 x 1,441 buckets
        for scope, tbs in list(self._topics.items()):
            for b in [b for b in tbs if b < oldest_topic]:
                del tbs[b]
            if not tbs:
                del self._topics[scope]
                for w in WINDOWS:
                    for part in ("now", "before"):
                        self._topics_closed.pop((scope, w, part), None)
        for k in [k for k, m in self.comments.items() if m.ts <= now - LONGEST]:
            del self.comments[k]

    # -- reading --------------------------------------------------------------------------
    def _bucket(self, scope: str, b: int) -> Acc:
        acc = self._merged.get((scope, b))
        if acc is None:
            acc = Acc()
            for c in self._buckets[scope][b].values():
                acc.merge(c.acc)
            self._merged[(scope, b)] = acc
        return acc

    def window_acc(self, scope: str, window: str, *, now: float) -> Acc:
        """The merged accumulator of the window's buckets: the closed ones (cached until the window
        moves on or a late event changes one of them) plus the current one."""
        start = window_start_bucket(WINDOWS[window], now=now, size=self.bucket_s)
        cur = bucket_of(now, self.bucket_s)
        # events arrive a little late: the last RECENT_S are merged at each query, the rest is cached
        settled = min(cur, bucket_of(now - RECENT_S, self.bucket_s))
        buckets = self._buckets.get(scope, {})
        cached = self._closed.get((scope, window))
        if cached is not None and cached[0] == start and cached[1] == settled - self.bucket_s:
            closed = cached[2]
        else:
            closed = Acc()
            for b in buckets:
                if start <= b < settled:
                    closed.merge(self._bucket(scope, b))
            self._closed[(scope, window)] = (start, settled - self.bucket_s, closed)
        out = Acc()
        out.merge(closed)
        for b in range(max(start, settled), cur + self.bucket_s, self.bucket_s):
            if b in buckets:
                out.merge(self._bucket(scope, b))
        self._add_open_time(out, scope, start, now)
        return out

    def _add_open_time(self, acc: Acc, scope: str, start: float, end: float) -> None:
        """Add the time in [start, end) of the states the scope's agents are in now: not booked into
        buckets until the state ends (stream/agents.py)."""
        if scope.startswith("agent:"):
            a = self._by_name.get(scope[6:])
            if a is not None:
                for state, secs in agent_seconds(a, start, end).items():
                    acc.v[IX[TIME_FIELD[state]]] += secs
            return
        if scope not in self._agents.scopes:
            return
        v = acc.v
        for state, name in TIME_FIELD.items():
            secs = self._agents.open_seconds(scope, state, start, end)
            if secs:
                v[IX[name]] += secs

    def range_acc(self, scope: str, first: int, last: int, *, now: float) -> Acc:
        """The merged accumulator of the scope's buckets from `first` to `last` (bucket starts, both
        included), uncached: for a window other than the current one (the previous period)."""
        out = Acc()
        for b in self._buckets.get(scope, {}):
            if first <= b <= last:
                out.merge(self._bucket(scope, b))
        self._add_open_time(out, scope, first, min(last + self.bucket_s, now))
        return out

    def minute_accs(self, scope: str, first: int, minutes: int) -> list[Acc]:
        """One merged accumulator per minute from `first` (a minute start), `minutes` of them."""
        buckets = self._buckets.get(scope, {})
        out = []
        for m in range(first, first + 60 * minutes, 60):
            acc = Acc()
            for b in range(m, m + 60, self.bucket_s):
                if b in buckets:
                    acc.merge(self._bucket(scope, b))
            out.append(acc)
        return out

    def live_of(self, scope: str, *, now: float) -> LiveCounts:
        return self._live.counts(scope, now=now)

    def waiting_of(self, scope: str) -> Waiting:
        return self._calls.of(scope)

    def live_kpis(self, scope: str, *, now: float) -> dict[str, Kpi]:
        """The live-state KPIs that apply to the scope's kind (kpis.md "Live state")."""
        kind = kind_of(scope)
        out: dict[str, Kpi] = {}
        if kind in TICKET_KINDS:
            lc = self._live.counts(scope, now=now)
            out["backlog"] = (float(lc.backlog), lc.backlog)
            out["first_response_overdue"] = (float(lc.overdue), lc.overdue)
            out["first_response_at_risk"] = (float(lc.at_risk), lc.at_risk)
            out["oldest_unanswered_s"] = (lc.oldest_unanswered_s(now), lc.unanswered)
        w = self._calls.of(scope)
        if kind in CALL_KINDS:
            out["calls_waiting"] = (float(w.calls), w.calls)
            out["longest_wait_s"] = (w.longest_wait_s(now), w.calls)
        if kind in AGENT_KINDS:
            ac = self._agents.of(scope)
            out["agents_staffed"] = (float(ac.staffed), ac.staffed)
            for state in COUNTED:
                n = ac.by_state.get(state, 0)
                out[f"agents_{state}"] = (float(n), n)
            for state in ("available", "away", "after_contact_work"):
                out[f"longest_{state}_s"] = (ac.longest_s(state, now), ac.by_state.get(state, 0))
            unattended = w.calls if not ac.by_state.get("available") else 0
            out["calls_waiting_unattended"] = (float(unattended), w.calls)
        if kind == "queue":
            s, offered = self.staffing(scope, now=now)
            out["traffic_erlangs"] = (s.traffic_erlangs, offered)
            out["required_agents"] = (float(s.required_agents), offered)
            out["staffing_gap"] = (float(s.staffing_gap), offered)
            out["predicted_service_level"] = (s.predicted_service_level, offered)
            f = self.forecasts.get((scope, "calls_offered"))
            this = f.at(int(now // QUARTER) * QUARTER) if f is not None and now - f.made <= FORECAST_FRESH_S else None
            out["calls_offered_forecast"] = (this, round(this)) if this is not None else (None, 0)
            nxt = self.next_interval(scope, now=now, staffed=s)
            if nxt is None:
                out["calls_offered_next"] = out["required_agents_next"] = out["staffing_gap_next"] = (None, 0)
            else:
                expected, need = nxt
                n = round(expected)
                out["calls_offered_next"] = (expected, n)
                out["required_agents_next"] = (float(need), n)
                out["staffing_gap_next"] = (float(s.agents - need), n)
        return out

    def next_interval(self, scope: str, *, now: float, staffed: Staffing) -> tuple[float, int] | None:
        """The calls a queue's forecast expects in the next quarter hour and the agents Erlang C needs
        for them at the current handle time (workforce.md "Forecast"); None without a fresh forecast."""
        f = self.forecasts.get((scope, "calls_offered"))
        if f is None or now - f.made > FORECAST_FRESH_S:
            return None
        expected = f.at(int(now // QUARTER) * QUARTER + QUARTER)
        if expected is None:
            return None
        return expected, self.required_for(scope, expected, staffed.handle_time_s)

    def required_for(self, scope: str, calls: float, handle_s: float) -> int:
        """Erlang C's agents for `calls` in a quarter hour of a queue, at handle time `handle_s`."""
        queue = scope.removeprefix("queue:")
        return required_agents(calls / QUARTER * handle_s, threshold_s=self.staffing_cfg.threshold(queue),
                               handle_s=handle_s, target=self.staffing_cfg.target(queue))

    def staffing(self, scope: str, *, now: float) -> tuple[Staffing, int]:
        """Erlang C for a queue scope, and the calls offered in the last 15 minutes it rests on: λ from
        them, the handle time from aht_s over 1 h (the default while no call ended), the agents
        staffed minus away (workforce.md)."""
        cfg, queue = self.staffing_cfg, scope.removeprefix("queue:")
        offered = self.window_acc(scope, "15m", now=now).offered
        hour = self.window_acc(scope, "1h", now=now)
        handle = hour.handle_sum / hour.ended if hour.ended else cfg.default_handle_s
        ac = self._agents.of(scope)
        s = staffing(lambda_per_s=offered / WINDOWS["15m"], handle_s=handle, threshold_s=cfg.threshold(queue),
                     target=cfg.target(queue), agents=ac.staffed - ac.by_state.get("away", 0))
        return s, int(offered)

    def agents_of(self, scope: str) -> AgentCounts:
        return self._agents.of(scope)

    def agent_list(self, scope: str) -> list[tuple[str, Agent]]:
        """The agents of a scope (every state, offline included), by name."""
        found = [(name, p, a) for (p, name), a in self.agents.items() if scope in a.scopes(name)]
        return [(name, a) for name, _, a in sorted(found, key=lambda x: (x[0], x[1]))]

    def scopes(self, *, now: float) -> list[str]:
        """The scopes with figures, at most `caps[kind]` values per kind (plus `<kind>:other`).

        Each source partition admits up to the cap (stream/caps.py), so partitions flooded with
        different values can together hold `cap x partitions`; the list keeps the most active of
        them (most minutes with events in the last 24 h). The others stay reachable by name.
        """
        oldest = bucket_of(now - LONGEST, self.bucket_s)
        active = {s: n for s, bs in self._buckets.items() if (n := sum(1 for b in bs if b >= oldest))}
        found = {*active, *self._live.scopes, *self._calls.scopes,
                 *(s for s in self._agents.scopes if kind_of(s) in AGENT_KINDS)}
        by_kind: dict[str, list[str]] = defaultdict(list)
        for scope in found:
            by_kind[kind_of(scope)].append(scope)
        by_kind.pop("all", None)
        out = ["all"]
        for kind, scopes in by_kind.items():
            cap = self.caps.get(kind)
            if cap is not None and len(scopes) > cap + 1:  # `other` first, then the most active
                scopes = heapq.nsmallest(cap + 1, scopes, key=lambda s: (not s.endswith(f":{OTHER}"),
                                                                        -active.get(s, 0), s))
            out.extend(scopes)
        return sorted(out)

    def busiest(self, kind: str, n: int, *, now: float) -> list[str]:
        """The `n` scopes of `kind` with the most minutes with events in the last 24 h (ties: by name)."""
        oldest = bucket_of(now - LONGEST, self.bucket_s)
        prefix = f"{kind}:"
        active = ((sum(1 for b in bs if b >= oldest), s) for s, bs in self._buckets.items() if s.startswith(prefix))
        return sorted(s for _, s in heapq.nsmallest(n, ((-m, s) for m, s in active if m)))

    def has_scope(self, scope: str, *, now: float) -> bool:
        return scope == "all" or scope in self._buckets or scope in self._live.scopes or scope in self._calls.scopes \
            or scope in self._agents.scopes

    def kpi(self, scope: str, kpi: str, window: str, *, now: float) -> Kpi:
        """One KPI as /v1/kpis gives it: a windowed one over `window`, a live-state one now (any
        window, `live` included). (None, 0) for a KPI the scope's kind does not have."""
        if kpi in LIVE_BY_NAME:
            return self.live_kpis(scope, now=now).get(kpi, (None, 0))
        if kpi in TOPIC_KPIS:
            return self.top_topic(scope, window, now=now)
        return KPI_BY_NAME[kpi].compute(self.window_acc(scope, window, now=now))

    def kpis(self, scope: str, window: str, *, now: float) -> dict[str, Kpi]:
        """Every windowed KPI, plus the live-state KPIs that apply to the scope's kind (not the topic index's:
        `kpi` gives those)."""
        out = compute(self.window_acc(scope, window, now=now))
        out.update(self.live_kpis(scope, now=now))
        return out

    # -- the voice of the customer (voice.md) ------------------------------------------------
    def _topic_counts(self, scope: str, first: int, last: int) -> _TopicCounts:
        """Comments, negative and neutral comments, and comments per topic in buckets first..last."""
        out = _TopicCounts()
        tbs = self._topics.get(scope)
        if tbs:
            for b in range(first, last + self.bucket_s, self.bucket_s):
                per = tbs.get(b)
                if per:
                    for tb in per.values():
                        out.add(tb.comments, tb.nn, tb.counts)
        return out

    def _topic_window(self, scope: str, window: str, part: str, *, now: float) -> _TopicCounts:
        """The topic counts of the window (`now`) or of the one before it (`before`): the settled buckets
        cached until the window moves on or a late comment changes one, the last RECENT_S merged per query
        (a 24 h window is 1,441 buckets, read at every board render)."""
        size = self.bucket_s
        start, cur = window_start_bucket(WINDOWS[window], now=now, size=size), bucket_of(now, size)
        if part == "before":
            first, last, settled = start - (cur - start + size), start - size, start
        else:
            first, last, settled = start, cur, min(cur, bucket_of(now - RECENT_S, size))
        cached = self._topics_closed.get((scope, window, part))
        if cached is not None and cached[0] == first and cached[1] == settled - size:
            closed = cached[2]
        else:
            closed = self._topic_counts(scope, first, settled - size)
            self._topics_closed[(scope, window, part)] = (first, settled - size, closed)
        if settled > last:
            return closed
        out = _TopicCounts()
        out.merge(closed)
        out.merge(self._topic_counts(scope, settled, last))
        return out

    def topics(self, scope: str, window: str, *, now: float, limit: int = 10) -> tuple[list[Topic], int]:
        """The scope's top topics in the window, by count then change (voice.md), and the negative and
        neutral comments they are a share of. The previous window is the one just before."""
        start = window_start_bucket(WINDOWS[window], now=now, size=self.bucket_s)
        this, past = self._topic_window(scope, window, "now", now=now), self._topic_window(scope, window, "before",
                                                                                             now=now)
        nn, counts, before, prev = this.nn, this.counts, past.comments, past.counts
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -(kv[1] - prev.get(kv[0], 0)), kv[0]))[:limit]
        examples = self._examples(scope, {k for k, _ in ranked}, start)
        out = [Topic(k, n, n / nn if nn else None, n - prev.get(k, 0) if before else None,
                     tuple(examples.get(k, ()))) for k, n in ranked]
        return out, nn

    def top_topic(self, scope: str, window: str, *, now: float) -> Kpi:
        """`top_topic_comments`: the comments on the scope's most frequent topic in the window (count:
        its negative and neutral comments)."""
        this = self._topic_window(scope, window, "now", now=now)
        return (float(max(this.counts.values())) if this.counts else (0.0 if this.nn else None)), this.nn

    def _examples(self, scope: str, keys: set[str], start: int) -> dict[str, list[Comment]]:
        found: dict[str, list[Comment]] = defaultdict(list)
        if not keys:
            return found
        for m in sorted(self._scope_comments(scope), key=lambda m: (-m.ts, m.survey_id)):
            if m.ts < start:
                break
            for t in m.topics:
                if t in keys and len(found[t]) < TOPIC_EXAMPLES:
                    found[t].append(m)
        return found

    def _scope_comments(self, scope: str) -> Iterator[Comment]:
        if scope == "all":
            return iter(self.comments.values())
        kind, name = split_scope(scope)
        field_ = {"team": "team", "channel": "channel", "tier": "tier", "agent": "agent"}.get(kind)
        if field_ is None:
            return iter(())
        return (m for m in self.comments.values() if getattr(m, field_) == name)

    def comment_list(self, scope: str, *, now: float, window: str | None = None, label: str | None = None,
                     topic: str | None = None, low: bool = False, limit: int = 50) -> list[Comment]:
        """The scope's kept comments, newest first: within the window, of one label or topic; `low`:
        the ones the board's panel lists (low score or negative)."""
        # a window starts where its counts start: at its first bucket (stream/windows.py)
        since = window_start_bucket(WINDOWS[window], now=now, size=self.bucket_s) if window else float("-inf")

        def wanted(m: Comment) -> bool:
            return m.ts >= since and (label is None or m.label == label) and (topic is None or topic in m.topics) \
                and (not low or m.low or m.label == "negative")

        return heapq.nsmallest(limit, (m for m in self._scope_comments(scope) if wanted(m)),
                               key=lambda m: (-m.ts, m.survey_id))

    # -- lists for the board ----------------------------------------------------------------
    def urgent_tickets(self, scope: str, state: str, *, now: float, limit: int) -> list[tuple[str, Ticket]]:
        """Open tickets of the scope, most urgent first: those awaiting a first response by due time,
        then the others by age. `state`: open (all), at_risk (awaiting, at risk or overdue), overdue."""
        def wanted(t: Ticket) -> bool:
            if state == "overdue":
                return not t.responded and t.due <= now
            if state == "at_risk":
                return not t.responded and t.due - AT_RISK_SHARE * t.target_s <= now
            return True

        found = ((tid, t) for (_, tid), t in self.tickets.items() if scope == "all" or scope in t.scopes())
        return heapq.nsmallest(limit, (x for x in found if wanted(x[1])),
                               key=lambda x: (x[1].responded, x[1].due if not x[1].responded else x[1].created_at,
                                              x[0]))

    def recent_comments(self, scope: str, *, limit: int) -> list[Comment]:
        """The newest comments of the scope that have a low score or read negative (the board's panel)."""
        return heapq.nlargest(limit, (m for m in self._scope_comments(scope) if m.low or m.label == "negative"),
                              key=lambda m: m.ts)

    def kpi_totals(self, scope: str) -> tuple[list[float], frozenset[str]] | None:
        """The scope's KPI counters since it first counted (indexed like stream.folds.FIELDS), summed
        over the source partitions, and the source topics they come from; None for a scope without.

        Monotonic from scrape to scrape and across restarts of any process: each partition's total only
        grows, and the sum runs in a fixed order (sorted keys; IEEE addition is monotonic), so a sum
        of float durations never dips by a rounding error, which Prometheus would read as a reset.
        """
        per = self._totals.get(scope)
        if not per:
            return None
        out = [0.0] * len(FIELDS)
        for k in sorted(per):
            for i, x in enumerate(per[k].v):
                if x:
                    out[i] += x
        return out, frozenset(t for t, _ in per)

    def pipeline_counters(self) -> Counters:
        """Pipeline counters summed over every topic and partition."""
        out = Counters()
        for c in self.counters.values():
            for k, n in c.events.items():
                out.events[k] = out.events.get(k, 0) + n
            for k, n in c.dead.items():
                out.dead[k] = out.dead.get(k, 0) + n
            for k, n in c.over.items():
                out.over[k] = out.over.get(k, 0) + n
            for k, n in c.evicted.items():
                out.evicted[k] = out.evicted.get(k, 0) + n
            out.late += c.late
            out.dup += c.dup
        return out
