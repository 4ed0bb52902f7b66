"""What the board shows, computed from the view and the API's snapshots. Pure: the caller passes `now`.

`BoardConfig` is the page's state, all of it in the URL (a wall screen is a bookmark). `build`
turns the view, targets, rules, alerts and history comparisons into plain data that the templates
render; nothing here formats HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from alerts.rules import Rule
from api.alert_views import AlertView
from api.board.i18n import LANGS, fmt, fmt_change, kpi_label, word
from api.kpi_targets import Targets
from api.rankings import rank
from history.forecast import ScopeForecast
from stream.folds import Acc
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, LOWER_IS_BETTER, Kpi, achievement, change
from stream.scopes import SCOPE_KINDS, is_valid_scope, kind_of, name_of
from stream.view import View
from stream.windows import WINDOWS

TILES = ("service_level", "asa_s", "abandonment_rate", "calls_waiting", "longest_wait_s", "first_response_sla_rate",
         "backlog", "first_response_at_risk", "first_response_overdue", "fcr_rate", "csat", "nps", "ces_mean")
SPARK_MINUTES = 60
SMOOTH_MINUTES = 5
STATUS_ICON = {"ok": "✔", "warning": "▲", "critical": "✖", "none": "·"}
SEVERITY_ORDER = ("none", "ok", "warning", "critical")
# Which event family a tile's KPI comes from: a tile is shown on a scope (other than `all`) only when
# that family has events there in the last 24 h, so an agent who takes no calls has no call tiles
FAMILY = {"service_level": "calls", "asa_s": "calls", "abandonment_rate": "calls", "calls_waiting": "calls",
          "longest_wait_s": "calls", "first_response_sla_rate": "tickets", "backlog": "tickets",
          "first_response_at_risk": "tickets", "first_response_overdue": "tickets", "fcr_rate": "contacts",
          "csat": "surveys", "nps": "surveys", "ces_mean": "surveys"}
# Queue measures: callers abandon and wait in a queue, before any agent, so an agent has none
NOT_FOR_AGENTS = frozenset({"service_level", "abandonment_rate"})


def unit_of(kpi: str) -> str:
    d = KPI_BY_NAME.get(kpi)
    return d.unit if d is not None else LIVE_BY_NAME[kpi].unit


class Forecasts(Protocol):
    """What the board reads of the forecaster (api/forecasts.Forecaster)."""

    @property
    def made(self) -> Mapping[tuple[str, str], ScopeForecast]: ...

    def answer(self, scope: str, kpi: str) -> ScopeForecast | None: ...


@dataclass(frozen=True)
class BoardConfig:
    scope: str = "all"
    window: str = "1h"
    lang: str = "en"
    kiosk: bool = False
    theme: str = "auto"  # dark, light, auto (the screen's preference)
    cards: tuple[str, ...] = TILES
    queues: tuple[str, ...] = ()  # queue names to list; empty: every queue
    rotate: tuple[str, ...] = ()  # scopes to cycle through
    every: int = 30  # seconds per rotated scope
    rank_kpi: str = "csat"
    sound: bool = False  # a wall screen has nobody to tick the box: ?sound=1
    agents: bool = True  # the agent grid (?agents=0 hides it; a kiosk shows it with ?agents=1)
    topic: str = ""  # "what customers say": the comments panel lists this topic's comments (?topic=)

    @classmethod
    def from_query(cls, q: Mapping[str, str], lang: str) -> BoardConfig:
        """Filters from the URL; anything not understood is left at its default (a board never errors)."""
        scope = q.get("scope", "all")
        for kind in ("team", "queue", "channel", "tier", "agent"):
            if q.get(kind):
                scope = f"{kind}:{q[kind]}"
                break
        if not is_valid_scope(scope):
            scope = "all"
        def split(k: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in q.get(k, "").split(",") if x.strip())

        cards = tuple(c for c in split("cards") if c in TILES) or TILES
        rotate = tuple(s for s in split("rotate") if is_valid_scope(s))
        every = int(q["every"]) if q.get("every", "").isdigit() else 30
        rank = q.get("rank", "csat")
        return cls(scope=scope, window=q.get("window", "1h") if q.get("window") in WINDOWS else "1h",
                   lang=lang if lang in LANGS else "en", kiosk=q.get("kiosk") in ("1", "true", "yes"),
                   theme=q.get("theme", "auto") if q.get("theme") in ("dark", "light") else "auto",
                   cards=cards, queues=split("queues"), rotate=rotate, every=max(5, min(every, 3600)),
                   rank_kpi=rank if rank in KPI_BY_NAME else "csat", sound=q.get("sound") in ("1", "true", "yes"),
                   agents=q.get("agents") in ("1", "true", "yes") if q.get("kiosk") in ("1", "true", "yes")
                   else q.get("agents") not in ("0", "false", "no"),
                   topic=topic if (topic := q.get("topic", "")) and len(topic) <= 64 and topic.isprintable() else "")

    def known(self, scopes: set[str]) -> BoardConfig:
        """This configuration with only scopes and queues in `scopes` (the view's): an unknown scope
        shows the whole centre, unknown queues and rotated scopes are left out."""
        return replace(self, scope=self.scope if self.scope == "all" or self.scope in scopes else "all",
                       queues=tuple(q for q in self.queues if f"queue:{q}" in scopes),
                       rotate=tuple(s for s in self.rotate if s == "all" or s in scopes))

    def key(self) -> tuple[Any, ...]:
        """What makes two boards render the same sections (shared by every screen with this config)."""
        return (self.scope, self.window, self.lang, self.cards, self.queues, self.rank_kpi, self.kiosk, self.theme,
                self.agents, self.topic)


@dataclass(frozen=True)
class Tile:
    kpi: str
    label: str
    unit: str
    value: float | None
    count: int
    display: str
    status: str  # ok, warning, critical, none
    status_word: str
    target: str | None
    achievement: str | None
    changes: list[tuple[str, str, str]]  # (label, text, good|bad|flat)
    spark: list[float | None]
    spark_before: list[float | None]  # the same 60 minutes yesterday
    alert_window: str | None = None  # the status comes from a firing alert on this window (not the board's)


@dataclass(frozen=True)
class QueueRow:
    scope: str
    name: str
    waiting: int
    oldest_offered_at: float | None
    sl: tuple[float | None, str]
    abandonment: tuple[float | None, str]
    status: str
    available: int = 0  # agents of the queue available now
    staffed: int = 0  # agents of the queue not offline
    required: int | None = None  # Erlang C's required agents (None without calls in 15 min)
    short: bool = False  # staffed minus away below required


@dataclass(frozen=True)
class AgentCell:
    """One agent of the grid: state (colour and word), reason, since (time in state ticks on the page)."""

    name: str
    team: str
    state: str
    reason: str | None
    since: float
    long_after_s: float | None  # time in state from which the cell is highlighted (long ACW or away)


# after-contact work or away for longer than this is highlighted (the long-after-contact-work rule's warning)
LONG_STATE_S = {"after_contact_work": 300.0, "away": 1800.0}
GRID_ORDER = ("available", "on_contact", "after_contact_work", "away", "offline")
GRID_CELLS = 240  # at most this many cells; the header counts them all
GRID_CELLS_KIOSK = 24  # three rows on a wall screen, beside the next 2 hours


def agent_cells(view: View, cfg: BoardConfig) -> list[AgentCell]:
    """The agents of the board's scope (a queue board: those serving its queues), grouped by state
    (available first, as Flex's Teams View), longest in their state first."""
    scope = cfg.scope if kind_of(cfg.scope) in ("all", "team", "queue", "agent") else "all"
    rows = view.agent_list(scope)
    if cfg.queues:
        rows = [(n, a) for n, a in rows if set(a.queues) & set(cfg.queues)]
    cells = [AgentCell(n, a.team, a.state, a.reason, a.since, LONG_STATE_S.get(a.state)) for n, a in rows]
    return sorted(cells, key=lambda c: (GRID_ORDER.index(c.state), c.since, c.name))


@dataclass(frozen=True)
class OutlookRow:
    """One quarter hour of the "next 2 hours" panel (docs/board.md "Next 2 hours")."""

    start: int
    when: str  # past, now, next
    actual: float | None  # past: the count; now: so far; next: None
    expected: float | None
    low: float | None
    high: float | None
    required: int | None  # Erlang C's agents for `expected` (summed over the scope's queues)
    short: bool  # required above the agents staffed now (minus away)


@dataclass(frozen=True)
class Outlook:
    scope: str
    kpi: str  # calls_offered, or tickets_created for a scope without calls
    rows: list[OutlookRow]  # the last 2 h, the current quarter hour, the next 2 h
    staffed: int | None  # agents not offline now, as the queue rows say (None: the scope has no agents)
    wape: float | None
    method: str
    chart: dict[str, Any]


PAST_SHOWN = 8  # quarter hours of the last 2 h in the chart


def outlook(view: View, forecaster: Forecasts | None, cfg: BoardConfig, now: float) -> Outlook | None:
    """The forecast of the board's scope (all, a team or a queue) against the actual so far, and for
    calls the agents each quarter hour needs against those staffed now (None: no forecast yet)."""
    if forecaster is None or kind_of(cfg.scope) not in ("all", "team", "queue"):
        return None
    scope = cfg.scope
    made = forecaster.answer(scope, "calls_offered")
    if made is None or not any(i.expected or i.actual for i in made.intervals):
        made = forecaster.answer(scope, "tickets_created") if kind_of(scope) != "queue" else None
    if made is None:
        return None
    queues = _queues_of(view, forecaster, scope) if made.kpi == "calls_offered" else []
    need: dict[int, int] = {}
    for q in queues:
        qf = forecaster.answer(q, "calls_offered")
        for i in qf.intervals if qf is not None else []:
            if i.required_agents is not None:
                need[i.start] = need.get(i.start, 0) + i.required_agents
    ac = view.agents_of(scope)
    # "on" as the queue rows show it (not offline); short when the need exceeds those minus away
    staffed = ac.staffed if ac.staffed or ac.by_state else None
    ready = ac.staffed - ac.by_state.get("away", 0)
    cur = int(now // 900) * 900
    rows = []
    for i in made.intervals:
        if i.start < cur - PAST_SHOWN * 900:
            continue
        when = "past" if i.start < cur else "now" if i.start == cur else "next"
        req = need.get(i.start) if queues else None
        if when == "now" and queues:  # what the queue rows say: Erlang C on the calls of the last 15 min
            req = sum(view.staffing(q, now=now)[0].required_agents for q in queues)
        rows.append(OutlookRow(i.start, when, i.actual, i.expected, i.low, i.high, req,
                               req is not None and staffed is not None and when != "past" and req > ready))
    return Outlook(scope, made.kpi, rows, staffed, made.wape_24h, made.method, _chart(rows))


def _queues_of(view: View, forecaster: Forecasts, scope: str) -> list[str]:
    """The queue scopes whose staffing adds up to the scope's: itself, the queues a team's agents serve,
    or every queue with a forecast."""
    if kind_of(scope) == "queue":
        return [scope]
    if kind_of(scope) == "team":
        return sorted({f"queue:{q}" for _, a in view.agent_list(scope) for q in a.queues})
    return sorted({s for s, _ in forecaster.made if kind_of(s) == "queue"})


CHART_W, CHART_H, CHART_PAD = 340, 96, 4


def _chart(rows: list[OutlookRow]) -> dict[str, Any]:
    """The panel's chart as SVG coordinates: actual bars, the forecast line and its band, a mark at now."""
    if not rows:
        return {"bars": [], "line": "", "band": "", "labels": [], "now_x": None, "top": 0, "w": CHART_W, "h": CHART_H}
    top = max([r.high or 0.0 for r in rows] + [r.actual or 0.0 for r in rows] + [1.0])
    slot = CHART_W / len(rows)

    def y(v: float) -> float:
        return round(CHART_H - CHART_PAD - (CHART_H - 2 * CHART_PAD) * v / top, 1)

    bars = [{"x": round(i * slot + 1, 1), "w": round(slot - 2, 1), "y": y(r.actual), "h": round(y(0) - y(r.actual), 1),
             "cls": r.when} for i, r in enumerate(rows) if r.actual]
    mid = [round(i * slot + slot / 2, 1) for i in range(len(rows))]
    line = " ".join(f"{x},{y(r.expected)}" for x, r in zip(mid, rows, strict=True) if r.expected is not None)
    upper = [f"{x},{y(r.high)}" for x, r in zip(mid, rows, strict=True) if r.high is not None]
    lower = [f"{x},{y(r.low)}" for x, r in zip(mid, rows, strict=True) if r.low is not None][::-1]
    now_i = next((i for i, r in enumerate(rows) if r.when == "now"), None)
    labels = [{"ts": rows[0].start}, *([{"ts": rows[now_i].start}] if now_i else []), {"ts": rows[-1].start + 900}]
    # (no past rows: "now" is the first label already)
    return {"bars": bars, "line": line, "band": " ".join(upper + lower), "labels": labels,
            "now_x": round(now_i * slot, 1) if now_i is not None else None, "top": round(top), "w": CHART_W,
            "h": CHART_H}


@dataclass(frozen=True)
class RankRow:
    scope: str
    name: str
    value: float | None
    display: str
    count: int
    rank: int
    achievement: str | None


@dataclass
class Sources:
    """What the board reads besides the view (snapshots the API keeps in memory)."""

    targets: Targets = field(default_factory=Targets)
    rules: Sequence[Rule] = ()
    alerts: Sequence[AlertView] = ()  # firing alerts, with their live values
    compare: Mapping[str, Mapping[str, Kpi]] = field(default_factory=dict)  # yesterday / last_week -> KPIs
    spark_before: Mapping[str, list[float | None]] = field(default_factory=dict)  # kpi -> yesterday's minutes
    live_samples: Mapping[str, list[float | None]] = field(default_factory=dict)  # kpi -> last minutes (live)


def status_of(rules: Sequence[Rule], kpi: str, scope: str, value: float | None, count: int) -> str:
    """The most severe line of the alert rules for this KPI and scope that the value crosses."""
    if value is None:
        return "none"
    relevant = [r for r in rules if r.kpi == kpi and r.enabled and r.matches(scope)]
    if not relevant:
        return "none"
    judged = [r for r in relevant if count >= r.min_count]
    if not judged:
        return "none"  # too few samples for every line: not judged, so not "OK" either
    levels = {r.level(value) for r in judged}
    return "critical" if "critical" in levels else "warning" if "warning" in levels else "ok"


def tile_status(rules: Sequence[Rule], alerts: Sequence[AlertView], kpi: str, scope: str, value: float | None,
                count: int) -> tuple[str, str | None]:
    """The tile's state: the rules' lines on the board's figure, raised to the severity of any alert
    firing on this KPI and scope (which may judge another window: that window is returned), so
    that a tile never reads "OK" beside a critical alert on the same figure."""
    status = status_of(rules, kpi, scope, value, count)
    window = None
    for a in alerts:
        if a.state == "firing" and a.kpi == kpi and a.scope == scope and a.severity in SEVERITY_ORDER and \
                SEVERITY_ORDER.index(a.severity) > SEVERITY_ORDER.index(status):
            status, window = a.severity, a.window
    return status, window


def applies(kpi: str, scope: str, day: Acc) -> bool:
    """Whether a tile belongs on the scope's board: every tile on `all` and on a scope without events
    yet (nothing to tell them apart by); elsewhere, a KPI whose events the scope has had in the last
    24 h (`day`), and no queue measure on an agent."""
    kind = kind_of(scope)
    if kind == "agent" and kpi in NOT_FOR_AGENTS:
        return False
    calls: float = day.offered + day.answered + day.abandoned + day.ended
    tickets: float = day.created + day.fr_n + day.res_n
    surveys: float = day.surveys
    if kind == "all" or calls + tickets + surveys == 0:
        return True
    family = FAMILY.get(kpi)
    if family == "calls":
        return calls > 0
    if family == "tickets":
        return tickets > 0
    if family == "contacts":
        return calls + tickets > 0
    if family == "surveys":
        return surveys > 0
    return True


def _direction(kpi: str, delta: float | None) -> str:
    if not delta:
        return "flat"
    better = delta < 0 if kpi in LOWER_IS_BETTER else delta > 0
    return "good" if better else "bad"


def spark_accs(view: View, scope: str, now: float) -> list[Acc]:
    """One accumulator per minute of the last `SPARK_MINUTES`, each over the `SMOOTH_MINUTES` up to it
    (a rolling window: one minute of a few calls is too noisy to read on a wall)."""
    return rolling(view.minute_accs(scope, spark_start(now), SPARK_MINUTES + SMOOTH_MINUTES - 1))


def spark_start(now: float) -> int:
    """The first minute a sparkline reads (its first point smooths over the minutes before it)."""
    return int(now // 60) * 60 - 60 * (SPARK_MINUTES + SMOOTH_MINUTES - 2)


def rolling(per_minute: Sequence[Acc], n: int = SMOOTH_MINUTES) -> list[Acc]:
    """Each point merges the `n` minutes up to it."""
    out = []
    for i in range(len(per_minute) - n + 1):
        acc = Acc()
        for a in per_minute[i:i + n]:
            acc.merge(a)
        out.append(acc)
    return out


def tiles(view: View, cfg: BoardConfig, src: Sources, now: float) -> list[Tile]:
    kpis = view.kpis(cfg.scope, cfg.window, now=now)
    minutes = spark_accs(view, cfg.scope, now)
    day = view.window_acc(cfg.scope, "24h", now=now)
    out = []
    for k in cfg.cards:
        if k not in kpis or not applies(k, cfg.scope, day):
            continue  # e.g. calls on an agent board, tickets on a queue board, calls of an agent on chat
        value, count = kpis[k]
        unit = unit_of(k)
        target = src.targets.get(cfg.scope, k)
        ach = achievement(k, value, target) if target is not None else None
        status, alert_window = tile_status(src.rules, src.alerts, k, cfg.scope, value, count)
        changes = []
        for name, label in (("yesterday", "vs_yesterday"), ("last_week", "vs_last_week")):
            prev = src.compare.get(name, {}).get(k, (None, 0))[0]
            delta = change(value, prev)
            changes.append((word(label, cfg.lang), fmt_change(delta, unit), _direction(k, delta)))
        if k in KPI_BY_NAME:
            spark = [KPI_BY_NAME[k].compute(acc)[0] for acc in minutes]
        else:
            spark = list(src.live_samples.get(k, []))[-SPARK_MINUTES:]
        out.append(Tile(kpi=k, label=kpi_label(k, cfg.lang), unit=unit, value=value, count=count,
                        display=fmt(value, unit, cfg.lang), status=status,
                        status_word=word(status, cfg.lang) if status != "none" else "",
                        target=fmt(target, unit, cfg.lang) if target is not None else None,
                        achievement=f"{ach * 100:.0f}%" if ach is not None else None, changes=changes,
                        spark=spark, spark_before=list(src.spark_before.get(k, [])), alert_window=alert_window))
    return out


def queues(view: View, cfg: BoardConfig, src: Sources, now: float) -> list[QueueRow]:
    rows = []
    for s in view.scopes(now=now):
        if kind_of(s) != "queue" or (cfg.queues and name_of(s) not in cfg.queues):
            continue
        w = view.waiting_of(s)
        k = view.kpis(s, cfg.window, now=now)
        sl, ab = k["service_level"][0], k["abandonment_rate"][0]
        worst = max((status_of(src.rules, kpi, s, v, n) for kpi, (v, n) in k.items()),
                    key=["none", "ok", "warning", "critical"].index)
        need, calls = k["required_agents"]
        gap = k["staffing_gap"][0]
        rows.append(QueueRow(s, name_of(s), w.calls, w.oldest_offered_at, (sl, fmt(sl, "ratio", cfg.lang)),
                             (ab, fmt(ab, "ratio", cfg.lang)), worst, available=k["agents_available"][1],
                             staffed=k["agents_staffed"][1], required=int(need or 0) if calls else None,
                             short=bool(calls) and gap is not None and gap < 0))
    return sorted(rows, key=lambda r: (-r.waiting, r.name))


def rankings(view: View, cfg: BoardConfig, src: Sources, kind: str, now: float, limit: int = 8,
             min_count: int = 5) -> list[RankRow]:
    """The board's ranking panel: api/rankings.rank, as /v1/rankings ranks, formatted for the screen."""
    d = KPI_BY_NAME[cfg.rank_kpi]
    return [RankRow(r.scope, r.name, r.value, fmt(r.value, d.unit, cfg.lang), r.count, r.rank,
                    f"{r.achievement * 100:.0f}%" if r.achievement is not None else None)
            for r in rank(view, kind, cfg.rank_kpi, cfg.window, now, targets=src.targets, min_count=min_count,
                          limit=limit)]


def board_alerts(src: Sources, cfg: BoardConfig) -> list[AlertView]:
    """Firing alerts of the board's scope (every one on the `all` board), critical first."""
    mine = [a for a in src.alerts if a.state == "firing" and (cfg.scope == "all" or a.scope == cfg.scope)]
    return sorted(mine, key=lambda a: (a.severity != "critical", a.acked_at is not None,
                                       -(a.updated_at.timestamp() if a.updated_at else 0.0)))


def scope_choices(view: View, now: float) -> dict[str, list[str]]:
    """The scopes a person can pick, by kind (agents left out: there are too many for a menu)."""
    out: dict[str, list[str]] = {k: [] for k in SCOPE_KINDS if k not in ("all", "agent")}
    for s in view.scopes(now=now):
        if kind_of(s) in out:
            out[kind_of(s)].append(s)
    return out
