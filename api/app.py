"""create_app(settings): the FastAPI app. Nothing connects at import time or in `create_app`.

The resources routes depend on (api/deps.py) are put on `app.state` here: the view, its feed, the
KPI targets, the metrics registry, the database's status; once connected, `db`, `rulebook`,
`history`, `kpi_history`, `target_book` (the database) and `producer` (the broker).

The lifespan connects the broker and brings the database up in the background: connecting and
migrating are retried (1 s, doubling to 15 s) until they succeed. It waits for that at most 5 s
before serving, so a database that answers is ready before the first request, and one that is down
costs the start 5 s: the API then serves the live figures without it. Until the database is there
the routes that need it answer 503 with Retry-After, and so does any route whose database call fails
later (`DATABASE_DOWN`): never a 500.

Middlewares, outermost first: the Host header (SQM_API_ALLOWED_HOSTS), the body limit and the write
rate limit (api/limits.py). All of them answer before a body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from starlette.middleware.trustedhost import TrustedHostMiddleware

from alerts.feed import publish_rules
from alerts.history import AlertRepository, AlertStats
from alerts.rulebook import Rulebook
from api.board.router import router as board_router
from api.board.service import Board
from api.deps import DATABASE_DOWN, KEY_COOKIE, RETRY_AFTER_S, DatabaseStatus, ReadAuthenticated, identities
from api.docs_ui import mount_docs
from api.feed import StateFeed
from api.forecasts import Forecaster
from api.history_reads import HistoryReads
from api.keys import KeyStore, Principal
from api.limits import BodyLimit, RateLimit, StreamSlots, TokenBuckets
from api.metrics import AlertStatsCache, build_registry
from api.rankings import Measures
from api.routers import ROUTERS
from api.routers.events import MAX_BODY
from api.sampling import FollowUpChecker, LiveSampler
from api.security import CrossSiteGuard, SecurityHeaders
from api.snapshots import PeriodicSnapshot, Throttle, reason
from api.targets import TargetBook, Targets, load_targets
from db.engine import make_engine, upgrade
from history.store import HistoryStore
from services.config import Settings
from stream.records import ForecastKey, Record, decode_key
from stream.scopes import scope_partition
from stream.view import View

log = logging.getLogger(__name__)
T = TypeVar("T")
METRICS_DB_WAIT_S = 0.05
BOARD_STATIC = Path(__file__).with_name("board") / "static"
BODY_LIMIT = 64 * 1024  # rules, targets, silences, acknowledgements
INGEST_BODY_LIMIT = MAX_BODY  # POST /v1/events: up to 5000 events
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 15.0
LOG_DOWN_EVERY_S = 10.0  # a failing database call is logged at most this often (every request answers 503)
STARTUP_DB_WAIT_S = 5.0  # the longest the API waits for its database before serving without it


async def retrying(what: str, step: Callable[[], Awaitable[T]], status: DatabaseStatus | None = None) -> T:
    """`step()` until it succeeds, waiting 1 s, then twice as long each time up to 15 s."""
    delay = RETRY_FIRST_S
    while True:
        try:
            return await step()
        except Exception as exc:
            if status is not None:
                status.since, status.retry_s = status.since or time.time(), delay
            log.warning("%s failed (%s); trying again in %.0f s", what, reason(exc), delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("starting the database side failed", exc_info=task.exception())


def client_of(scope: dict[str, Any]) -> str:
    """Whom the rate limits count a request against: its API key or token, else its address."""
    address, key = identities(Request(scope))
    return key or address


@dataclass
class Parts:
    """What `create_app` builds and the lifespan starts, connects and stops."""

    settings: Settings
    view: View
    feed: StateFeed
    file_targets: dict[tuple[str, str], float]
    targets: PeriodicSnapshot[Targets]
    keys: PeriodicSnapshot[dict[str, Principal]]
    board: Board
    database: DatabaseStatus
    live: LiveSampler
    forecaster: Forecaster
    history: AlertRepository | None = None  # once the database is connected
    reads: HistoryReads = field(default_factory=HistoryReads)  # the KPI history's own bounded pool
    checks: FollowUpChecker | None = None  # once the database is connected
    stats: AlertStatsCache = field(init=False)

    def __post_init__(self) -> None:
        self.stats = AlertStatsCache(lambda: self.history.stats() if self.history is not None else AlertStats())


async def start_database(app: FastAPI, parts: Parts, engine: Engine, producer: AIOKafkaProducer) -> None:
    """Migrate (retried until the database answers), put the database's resources in place, then
    publish the rules (only once the database has been read: the file rules alone would tombstone the
    API rules on the rules topic)."""
    settings = parts.settings
    book = Rulebook(engine, settings.rules_file)
    await asyncio.to_thread(book.load_file)
    for err in book.file_errors:
        log.error("rule refused: %s", err)
    await retrying("connecting to the database (the live figures are served meanwhile; routes that need it "
                   "answer 503)", lambda: asyncio.to_thread(upgrade, engine), parts.database)
    parts.history = AlertRepository(engine)
    app.state.rulebook, app.state.history = book, parts.history
    app.state.kpi_history = HistoryStore(engine)
    app.state.target_book = TargetBook(engine, parts.file_targets)
    parts.targets.read = app.state.target_book.snapshot
    parts.keys.read = KeyStore(engine).snapshot
    parts.board.connect(book, parts.history, app.state.kpi_history, parts.reads)
    parts.forecaster.connect(app.state.kpi_history)
    app.state.db = engine
    if parts.database.since:
        log.info("database connected after %.0f s", time.time() - parts.database.since)
    await parts.targets.start()
    await parts.keys.start()
    await parts.board.start()
    parts.checks = FollowUpChecker(parts.view, parts.history)
    await parts.checks.start()

    async def publish() -> int:
        rules = [r for r, _ in await asyncio.to_thread(book.all)]
        await publish_rules(producer, settings.kafka, settings.rules_topic, rules)
        return len(rules)

    n = await retrying(f"publishing the rules to {settings.rules_topic}", publish)
    log.info("published %d rules to %s", n, settings.rules_topic)


def forecast_publisher(producer: AIOKafkaProducer, settings: Settings) -> Callable[[list[Record]], Awaitable[None]]:
    """Forecast records to the state topic (the APIs' views) and the scope topic (the alert workers')."""
    async def publish(records: list[Record]) -> None:
        futs = []
        for k, v in records:
            key = decode_key(k)
            assert isinstance(key, ForecastKey)
            futs.append(await producer.send(settings.state_topic, key=k, value=v, partition=0))
            futs.append(await producer.send(settings.scopes_topic, key=k, value=v,
                                            partition=scope_partition(key.scope, settings.partitions)))
        await asyncio.gather(*futs)

    return publish


def lifespan_of(parts: Parts, connect: bool) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = parts.settings
        producer: AIOKafkaProducer | None = None
        engine: Engine | None = None
        starting: asyncio.Task[None] | None = None
        if connect:
            producer = AIOKafkaProducer(**settings.kafka.aiokafka(), acks="all", linger_ms=2, client_id="sqm-api")
            await producer.start()
            app.state.producer = producer
            await parts.feed.start()
            await parts.live.start()
            parts.forecaster.publish = forecast_publisher(producer, settings)
            await parts.forecaster.start()
            engine = make_engine(settings.database_url)
            starting = asyncio.create_task(start_database(app, parts, engine, producer), name="database start")
            starting.add_done_callback(_log_failure)
            # a database that answers is connected before the first request, as if started in line
            await asyncio.wait({starting}, timeout=STARTUP_DB_WAIT_S)
        try:
            yield
        finally:
            if starting is not None:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            await parts.targets.stop()
            await parts.keys.stop()
            await parts.board.stop()
            if parts.checks is not None:
                await parts.checks.stop()
            await parts.live.stop()
            await parts.forecaster.stop()
            await parts.feed.stop()
            await parts.stats.stop()
            parts.reads.close()
            if producer is not None:
                await producer.stop()
            if engine is not None:
                engine.dispose()

    return lifespan


_log_down = Throttle(LOG_DOWN_EVERY_S)


def loggable(text: str, limit: int = 200) -> str:
    """Text from a request, fit for one log line: control characters escaped (a path with %0A cannot
    forge a line), at most `limit` characters."""
    out = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return out if len(out) <= limit else out[:limit] + "..."


async def database_down(request: Request, exc: Exception) -> Response:
    """A database call failed because the database is down or unreachable: 503 to retry, not 500."""
    if _log_down():
        log.warning("%s %s answered 503: the database is unavailable (%s)", request.method,
                    loggable(request.url.path), reason(exc))
    return JSONResponse({"detail": "the database is unavailable; try again later"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S)})


def create_app(settings: Settings, *, connect: bool = True) -> FastAPI:
    hosts = settings.trusted_hosts  # refuses to start beyond loopback without SQM_API_ALLOWED_HOSTS
    settings.check_read_auth()  # ... and without SQM_READ_AUTH
    view = View(settings.bucket_s, settings.effective_scope_caps, staffing=settings.staffing_config)
    file_targets = load_targets(settings.kpi_targets_file)
    targets = PeriodicSnapshot("targets", lambda: Targets(file_targets), Targets(file_targets))
    live = LiveSampler(view)
    forecaster = Forecaster(view, every_s=settings.forecast_every_s)
    parts = Parts(settings, view, StateFeed(view, settings.kafka, settings.state_topic,
                                            settings.fetch_max_wait_ms),
                  file_targets, targets, PeriodicSnapshot("api keys", dict, {}, every_s=10.0, loaded=not connect),
                  Board(view, lambda: targets.value, live, forecaster=forecaster), DatabaseStatus(connecting=connect),
                  live, forecaster)
    registry, ingest = build_registry(view, parts.feed, settings.metrics_agent_scopes, parts.stats,
                                      partitions=settings.partitions)

    app = FastAPI(title="sqm — streaming service-quality monitor", version="0.1.0",
                  lifespan=lifespan_of(parts, connect), docs_url=None, redoc_url=None, openapi_url=None,  # docs_ui
                  description="Live contact-center KPIs from Kafka events. See docs/api.md for the contract.")
    if settings.api_write_rate > 0 or settings.api_read_rate > 0:
        app.add_middleware(RateLimit, identify=client_of, reads=TokenBuckets(settings.api_read_rate,
                                                                             settings.api_read_burst)
                           if settings.api_read_rate > 0 else None,
                           buckets=TokenBuckets(settings.api_write_rate, settings.api_write_burst)
                           if settings.api_write_rate > 0 else None)
    app.add_middleware(BodyLimit, default=BODY_LIMIT, limits={"/v1/events": INGEST_BODY_LIMIT})
    app.add_middleware(CrossSiteGuard, cookie=KEY_COOKIE)
    app.add_middleware(SecurityHeaders)
    if hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    for exc_type in DATABASE_DOWN:
        app.add_exception_handler(exc_type, database_down)
    app.state.settings = settings
    app.state.database = parts.database
    app.state.view = view
    app.state.feed = parts.feed
    app.state.targets = targets
    app.state.keys = parts.keys
    app.state.board = parts.board
    app.state.forecaster = parts.forecaster
    app.state.ingest_metrics = ingest
    app.state.history_reads = parts.reads
    app.state.measures = Measures()  # rankings' measures, shared for a second (api/routers/kpis.py)
    app.state.session_secret = (settings.session_secret or "").encode() or secrets.token_bytes(32)
    app.state.streams = StreamSlots(settings.api_streams_per_client, settings.api_streams_per_key)
    for r in ROUTERS:
        app.include_router(r)
    app.include_router(board_router)
    app.mount("/board/static", StaticFiles(directory=BOARD_STATIC), name="board-static")
    mount_docs(app, [ReadAuthenticated])  # /openapi.json, /docs, /redoc (read auth), vendored assets

    @app.get("/metrics", include_in_schema=True, tags=["metrics"], dependencies=[ReadAuthenticated],
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus exposition of the live KPIs and of the pipeline's health. The KPIs come from the
        in-memory view; the alert figures from the database, waited for at most 50 ms (else the last
        snapshot): a slow database never holds up a scrape."""
        if parts.history is not None:
            await parts.stats.refresh(max_wait=METRICS_DB_WAIT_S)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    if hosts == ["*"]:
        log.info("answering any Host header (SQM_API_ALLOWED_HOSTS=*)")
    return app
