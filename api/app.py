"""create_app(settings): the FastAPI app. Nothing connects at import time or in `create_app`; the
lifespan connects the database and the broker.

The resources routes depend on (api/deps.py) are put on `app.state` here: the view, its feed, the
KPI targets, the metrics registry; and, once connected, `db`, `rulebook`, `history`, `producer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.feed import publish_rules
from alerts.history import AlertHistory, AlertStats
from alerts.rulebook import Rulebook
from api.board.router import router as board_router
from api.board.service import Board
from api.deps import ReadAuthenticated
from api.feed import StateFeed
from api.keys import KeyStore, Principal
from api.limits import BodyLimit
from api.metrics import AlertStatsCache, build_registry
from api.routers import ROUTERS
from api.routers.events import MAX_BODY
from api.snapshots import PeriodicSnapshot
from api.targets import TargetBook, Targets, load_targets
from db.engine import connect as connect_db
from history.store import HistoryStore
from services.config import Settings
from stream.view import View

log = logging.getLogger(__name__)
METRICS_DB_WAIT_S = 0.05
BOARD_STATIC = Path(__file__).with_name("board") / "static"
BODY_LIMIT = 64 * 1024  # rules, targets, silences, acknowledgements
INGEST_BODY_LIMIT = MAX_BODY  # POST /v1/events: up to 5000 events


def create_app(settings: Settings, *, connect: bool = True) -> FastAPI:
    view = View(settings.bucket_s)
    file_targets = load_targets(settings.kpi_targets_file)
    targets = PeriodicSnapshot("targets", lambda: Targets(file_targets), Targets(file_targets))
    feed = StateFeed(view, settings.kafka_bootstrap_servers, settings.state_topic, settings.fetch_max_wait_ms)
    history: AlertHistory | None = None
    stats = AlertStatsCache(lambda: history.stats() if history is not None else AlertStats())
    registry, ingest = build_registry(view, feed, settings.metrics_agent_scopes, stats)
    board = Board(view, lambda: targets.value)
    keys: PeriodicSnapshot[dict[str, Principal]] = PeriodicSnapshot("api keys", dict, {}, every_s=10.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal history
        producer: AIOKafkaProducer | None = None
        if connect:
            db = await asyncio.to_thread(connect_db, settings.database_url)
            book = Rulebook(db, settings.rules_file)
            await asyncio.to_thread(book.load_file)
            for err in book.file_errors:
                log.error("rule refused: %s", err)
            history = AlertHistory(db)
            app.state.db, app.state.rulebook, app.state.history = db, book, history
            app.state.kpi_history = HistoryStore(db)
            app.state.target_book = TargetBook(db, file_targets)
            targets.read = app.state.target_book.snapshot
            await targets.start()
            keys.read = KeyStore(db).snapshot
            await keys.start()
            board.connect(book, history, app.state.kpi_history)
            await board.start()
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                        linger_ms=2, client_id="sqm-api")
            await producer.start()
            app.state.producer = producer
            await feed.start()
            rules = [r for r, _ in await asyncio.to_thread(book.all)]
            await publish_rules(producer, settings.kafka_bootstrap_servers, settings.rules_topic, rules)
            log.info("published %d rules to %s", len(rules), settings.rules_topic)
        try:
            yield
        finally:
            await targets.stop()
            await keys.stop()
            await board.stop()
            await feed.stop()
            await stats.stop()
            if producer is not None:
                await producer.stop()
            engine = getattr(app.state, "db", None)
            if engine is not None:
                engine.dispose()

    app = FastAPI(title="sqm — streaming service-quality monitor", version="0.1.0", lifespan=lifespan,
                  description="Live contact-center KPIs from Kafka events. See docs/api.md for the contract.")
    app.add_middleware(BodyLimit, default=BODY_LIMIT, limits={"/v1/events": INGEST_BODY_LIMIT})
    app.state.settings = settings
    app.state.view = view
    app.state.feed = feed
    app.state.targets = targets
    app.state.keys = keys
    app.state.board = board
    app.state.ingest_metrics = ingest
    for r in ROUTERS:
        app.include_router(r)
    app.include_router(board_router)
    app.mount("/board/static", StaticFiles(directory=BOARD_STATIC), name="board-static")

    @app.get("/metrics", include_in_schema=True, tags=["metrics"], dependencies=[ReadAuthenticated],
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus exposition of the live KPIs and of the pipeline's health. The KPIs come from the
        in-memory view; the alert figures from the database, waited for at most 50 ms (else the last
        snapshot): a slow database never holds up a scrape."""
        if history is not None:
            await stats.refresh(max_wait=METRICS_DB_WAIT_S)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
