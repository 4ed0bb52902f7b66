"""The board's I/O side: snapshots of rules and alerts, history comparisons, and rendered sections.

Every screen with the same filters gets the same sections: `sections(cfg)` renders them at most
every `RENDER_EVERY_S` per configuration and shares the result, so 200 wall screens cost one render
per distinct board. The database (rules, alerts, history) is read in threads, into caches that the
render reads: a slow database makes a section older, never a screen slower, and a database that is
down leaves the last comparisons in place (tried again every `COMPARE_RETRY_S`) while the live
figures go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError

from alerts.followup import Reading
from alerts.history import AlertQuery, AlertRepository
from alerts.rulebook import Rulebook
from alerts.rules import Rule
from api.alert_rows import alert_view
from api.alert_views import AlertView
from api.board import model
from api.board.i18n import WORDS, duration, fmt, kpi_label
from api.forecasts import Forecaster
from api.history_reads import Busy, HistoryReads
from api.kpi_targets import Targets
from api.sampling import LiveSampler
from api.snapshots import PeriodicSnapshot, reason
from history.series import COMPARE_SHIFT_S, MINUTE, floor
from history.store import HistoryStore
from stream.clock import rfc3339
from stream.kpis import KPI_BY_NAME, LIVE_BY_NAME, Kpi, compute
from stream.tickets import AT_RISK_SHARE
from stream.view import View
from stream.voice import topic_name
from stream.windows import WINDOWS

TEMPLATES = Path(__file__).with_name("templates")
RENDER_EVERY_S = 0.5
MAX_CONFIGS = 500  # rendered boards and comparisons kept (by count; the oldest go first)
TOPICS_SHOWN = 5  # topics in "what customers say" (the comments take the rest of the panel)
COMPARE_EVERY_S = 60.0
COMPARE_WAIT_S = 30.0  # a comparison read still running after this is given up (its thread ends it)
COMPARE_RETRY_S = 10.0  # after a failed history read (the database is down)
log = logging.getLogger(__name__)
SECTIONS = ("tiles", "queues", "tickets", "rankings", "alerts", "topics", "comments", "agents")
DESK_ROWS, KIOSK_ROWS = 8, 12  # rows of the list panels (tickets; comments two fewer)
Compared = dict[str, dict[str, Kpi]]  # yesterday / last_week -> KPI -> (value, count)
Series = dict[str, list[float | None]]  # KPI -> one value a minute
FiringAlerts = tuple[list[Any], dict[str, list[Reading]]]  # alert rows, follow-up readings of the acknowledged


class Board:
    def __init__(self, view: View, targets: Callable[[], Targets], live: LiveSampler, base: str = "/board",
                 forecaster: Forecaster | None = None) -> None:
        self.view = view
        self.forecaster = forecaster
        self.targets = targets
        self.live = live
        self.base = base
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.rules: PeriodicSnapshot[list[Rule]] | None = None
        self.alerts: PeriodicSnapshot[FiringAlerts] | None = None
        self.history: HistoryStore | None = None
        self.reads: HistoryReads | None = None
        self._rendered: dict[tuple[Any, ...], tuple[float, dict[str, str]]] = {}
        self._compare: dict[tuple[str, str], tuple[float, Compared, Series]] = {}
        self._comparing: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._history_down_since: float | None = None

    def connect(self, rulebook: Rulebook, alert_history: AlertRepository, history: HistoryStore,
                reads: HistoryReads | None = None) -> None:
        """With the database: rules (for the tiles' colours), firing alerts, history comparisons (read on
        the API's bounded history pool, `reads`, shared with /v1/kpis and /v1/rankings)."""
        self.reads = reads or HistoryReads(workers=1)
        self.rules = PeriodicSnapshot("board rules", lambda: [r for r, _ in rulebook.all()], [], every_s=10)
        def firing() -> FiringAlerts:
            rows = alert_history.alerts(AlertQuery(state=["firing"], limit=200))[0]
            return rows, alert_history.readings([a.id for a in rows if a.acked_at is not None])

        self.alerts = PeriodicSnapshot("board alerts", firing, ([], {}), every_s=1)
        self.history = history

    async def start(self) -> None:
        for snap in (self.rules, self.alerts):
            if snap is not None:
                await snap.start()

    async def stop(self) -> None:
        for snap in (self.rules, self.alerts):
            if snap is not None:
                await snap.stop()

    # -- data ---------------------------------------------------------------------------------------
    def _comparison(self, scope: str, window: str, now: float) -> tuple[Compared, Series]:
        """Yesterday's and last week's figures and yesterday's 60 minutes, read in the background."""
        key = (scope, window)
        cached = self._compare.get(key)
        if (cached is None or now - cached[0] > COMPARE_EVERY_S) and self.history is not None \
                and key not in self._comparing:
            self._comparing.add(key)
            task = asyncio.get_running_loop().create_task(self._read_comparison(key, now))
            self._tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._tasks.discard)
        return (cached[1], cached[2]) if cached else ({}, {})

    async def _read_comparison(self, key: tuple[str, str], now: float) -> None:
        scope, window = key
        store = self.history
        assert store is not None

        def read() -> tuple[Compared, Series]:
            w = WINDOWS[window]
            out = {}
            for name, shift in COMPARE_SHIFT_S.items():
                acc, rows = store.window_before(scope, w, now, shift)
                if rows:  # no history then is not "nothing happened"
                    out[name] = compute(acc)
            start = model.spark_start(now - 86400)
            n = model.SPARK_MINUTES + model.SMOOTH_MINUTES - 1
            accs = model.rolling([acc for _, acc in store.series(scope, start, start + n * MINUTE, MINUTE)])
            spark = {k: [KPI_BY_NAME[k].compute(acc)[0] for acc in accs] for k in model.TILES if k in KPI_BY_NAME}
            return out, spark

        assert self.reads is not None
        try:
            compare, spark = await self.reads.run(("board", scope, window, int(now // MINUTE)), read,
                                                  timeout_s=COMPARE_WAIT_S)
        except SQLAlchemyError as exc:
            self._history_failed(key, now, exc)
            return
        except (Busy, TimeoutError):  # the pool is full (a flood of rankings): the next render asks again
            return
        finally:
            self._comparing.discard(key)
        if self._history_down_since is not None:
            log.info("board: the history is read again after %.0f s", time.time() - self._history_down_since)
            self._history_down_since = None
        self._compare[key] = (now, compare, spark)
        if len(self._compare) > MAX_CONFIGS:  # the oldest first: bounded by count, whatever their age
            self._compare = dict(sorted(self._compare.items(), key=lambda kv: kv[1][0])[-MAX_CONFIGS // 2:])

    def _history_failed(self, key: tuple[str, str], now: float, exc: Exception) -> None:
        """Keep the last comparison (or none) and try again in COMPARE_RETRY_S, not at every render."""
        if self._history_down_since is None:
            self._history_down_since = time.time()
            log.warning("board: the history is not read (%s); comparisons stay as they were, trying again "
                        "every %.0f s", reason(exc), COMPARE_RETRY_S)
        _, compare, spark = self._compare.get(key, (now, {}, {}))
        self._compare[key] = (now - COMPARE_EVERY_S + COMPARE_RETRY_S, compare, spark)

    def _live_samples(self, scope: str, now: float) -> dict[str, list[float | None]]:
        """The live-state KPIs of the last hour, one a minute (sampled by the API for every scope)."""
        last = floor(now, MINUTE)
        return {k: self.live.samples.series(scope, k, last=last, n=model.SPARK_MINUTES)
                for k in model.TILES if k in LIVE_BY_NAME}

    def firing(self, now: float) -> list[AlertView]:
        """The firing alerts with their live values (from the view, as /v1/kpis) and follow-ups."""
        rows, readings = self.alerts.value if self.alerts else ([], {})
        return [alert_view(a, self.view, now=now, readings=readings.get(a.id, [])) for a in rows]

    def sources(self, cfg: model.BoardConfig, now: float) -> model.Sources:
        compare, spark_before = self._comparison(cfg.scope, cfg.window, now)
        return model.Sources(targets=self.targets(), rules=self.rules.value if self.rules else [],
                             alerts=self.firing(now), compare=compare,
                             spark_before=spark_before, live_samples=self._live_samples(cfg.scope, now))

    # -- rendering ----------------------------------------------------------------------------------
    def link(self, cfg: model.BoardConfig, **change: str) -> str:
        q = {"scope": cfg.scope, "window": cfg.window, "lang": cfg.lang}
        if cfg.kiosk:
            q["kiosk"] = "1"
        if cfg.theme != "auto":
            q["theme"] = cfg.theme
        if cfg.agents == cfg.kiosk:  # not the default of its mode
            q["agents"] = "1" if cfg.agents else "0"
        if cfg.topic:
            q["topic"] = cfg.topic
        for k, v in change.items():
            q[k] = v
        return f"{self.base}?{urlencode({k: v for k, v in q.items() if v})}"

    def _context(self, cfg: model.BoardConfig, now: float) -> dict[str, Any]:
        t = {k: v[cfg.lang] for k, v in WORDS.items()}
        return {"cfg": cfg, "t": t, "now": now, "icons": model.STATUS_ICON, "base": self.base,
                "risk": AT_RISK_SHARE, "drill": lambda scope: self.link(cfg, scope=scope),
                "fmt_kpi": lambda kpi, v: fmt(v, model.unit_of(kpi), cfg.lang),
                "label": lambda kpi: kpi_label(kpi, cfg.lang),
                "fmt_wait": lambda s: duration(max(0.0, s), cfg.lang),
                "fmt_due": lambda s: duration(s, cfg.lang) if s >= 0 else f"−{duration(-s, cfg.lang)}",
                "kpi_label": kpi_label(cfg.rank_kpi, cfg.lang),
                "topic_link": lambda key: self.link(cfg, topic=key),
                "topic_name": lambda key: topic_name(key, "zh" if cfg.lang == "zh-CN" else "en")}

    def render_sections(self, cfg: model.BoardConfig, now: float) -> dict[str, str]:
        view, src = self.view, self.sources(cfg, now)
        ctx = self._context(cfg, now)
        ticket_scope = cfg.scope if not cfg.scope.startswith("queue:") else "all"
        rows = KIOSK_ROWS if cfg.kiosk else DESK_ROWS  # a wall screen's panels are taller: fill them
        parts: dict[str, tuple[str, dict[str, Any]]] = {
            "tiles": ("_tiles.html", {"tiles": model.tiles(view, cfg, src, now)}),
            "queues": ("_queues.html", {"queues": model.queues(view, cfg, src, now)}),
            "tickets": ("_tickets.html", {"tickets": view.urgent_tickets(ticket_scope, "open", now=now, limit=rows)}),
            "rankings": ("_rankings.html", {"teams": model.rankings(view, cfg, src, "team", now, min_count=1),
                                            "agents": model.rankings(view, cfg, src, "agent", now)}),
            "alerts": ("_alerts.html", {"alerts": model.board_alerts(src, cfg)[:12]}),
            "topics": ("_topics.html", {"topics": view.topics(ticket_scope, cfg.window, now=now,
                                                              limit=TOPICS_SHOWN)[0]}),
            "comments": ("_comments.html", {"comments": view.comment_list(ticket_scope, now=now, window=cfg.window,
                                                                          topic=cfg.topic, limit=rows)
                                            if cfg.topic else view.recent_comments(ticket_scope, limit=rows - 2)}),
            "outlook": ("_outlook.html", {"outlook": model.outlook(view, self.forecaster, cfg, now)}),
            "agents": ("_agents.html", {"cells": model.agent_cells(view, cfg) if cfg.agents else [],
                                        "limit": model.GRID_CELLS_KIOSK if cfg.kiosk else model.GRID_CELLS}),
        }
        return {name: self.env.get_template(tpl).render(**ctx, **extra) for name, (tpl, extra) in parts.items()}

    def sections(self, cfg: model.BoardConfig, now: float | None = None) -> dict[str, str]:
        """The rendered sections of this configuration, shared by every screen that shows it."""
        now = time.time() if now is None else now
        key = cfg.key()
        cached = self._rendered.get(key)
        if cached is not None and now - cached[0] < RENDER_EVERY_S:
            return cached[1]
        out = self.render_sections(cfg, now)
        self._rendered[key] = (now, out)
        if len(self._rendered) > MAX_CONFIGS:  # configurations nobody shows any more
            for k in sorted(self._rendered, key=lambda k: self._rendered[k][0])[:MAX_CONFIGS // 2]:
                del self._rendered[k]
        return out

    def page(self, cfg: model.BoardConfig, stream_url: str, static: str, *, can_ack: bool = False) -> str:
        now = time.time()
        ctx = self._context(cfg, now)
        scope_label = WORDS["all"][cfg.lang] if cfg.scope == "all" else cfg.scope
        other = "zh-CN" if cfg.lang == "en" else "en"
        return self.env.get_template("board.html").render(
            **ctx, sections=self.sections(cfg, now), stream_url=stream_url, static=static, can_ack=can_ack,
            scope_label=scope_label, windows=list(WINDOWS), choices=model.scope_choices(self.view, now),
            as_of=rfc3339(now), links={"lang": self.link(cfg, lang=other),
                                       "theme": self.link(cfg, theme="light" if cfg.theme == "dark" else "dark")})

    def alert_row(self, alert: AlertView, cfg: model.BoardConfig) -> str:
        """One alert row (after an acknowledgement): the same markup as in the alerts section."""
        html = self.env.get_template("_alerts.html").render(**self._context(cfg, time.time()), alerts=[alert])
        start, end = html.index("<li"), html.rindex("</li>") + len("</li>")
        return html[start:end]
