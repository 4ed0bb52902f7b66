"""create_app(settings): the FastAPI app. Nothing connects at import time; the lifespan does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alerts.db import connect as connect_db
from alerts.feed import publish_rules
from alerts.rulebook import Rulebook
from api.deps import Runtime
from api.feed import StateFeed
from api.metrics import build_registry
from api.routers import ROUTERS
from api.targets import load_targets
from services.config import Settings
from stream.view import View

log = logging.getLogger(__name__)


class _FeedRef:
    """Late-bound view of the feed for the collector (the feed exists only once the app started)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @property
    def warm(self) -> bool:
        return bool(self.rt.feed and self.rt.feed.warm)

    @property
    def latest_record_ts(self) -> float:
        return self.rt.feed.latest_record_ts if self.rt.feed else 0.0


def create_app(settings: Settings, *, connect: bool = True) -> FastAPI:
    view = View(settings.bucket_s)
    rt = Runtime(settings=settings, view=view, targets=load_targets(settings.kpi_targets_file),
                 registry=None)  # type: ignore[arg-type]
    rt.registry, ingest = build_registry(view, _FeedRef(rt), settings.metrics_agent_scopes, lambda: rt.db)
    rt.extra["ingest_metrics"] = ingest

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if connect:
            rt.db = await asyncio.to_thread(connect_db, settings.database_url)
            rt.rulebook = book = Rulebook(rt.db, settings.rules_file)
            book.load_file()
            for err in book.file_errors:
                log.error("rule refused: %s", err)
            rt.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                           linger_ms=2, client_id="sqm-api")
            await rt.producer.start()
            rt.feed = StateFeed(view, settings.kafka_bootstrap_servers, settings.state_topic, rt.producer,
                                settings.fetch_max_wait_ms)
            await rt.feed.start()
            rules = [r for r, _ in await asyncio.to_thread(book.all)]
            await publish_rules(rt.producer, settings.kafka_bootstrap_servers, settings.rules_topic, rules)
            log.info("published %d rules to %s", len(rules), settings.rules_topic)
        try:
            yield
        finally:
            if rt.feed:
                await rt.feed.stop()
            if rt.producer:
                await rt.producer.stop()
            if rt.db is not None:
                rt.db.dispose()

    app = FastAPI(title="sqm — streaming service-quality monitor", version="0.1.0", lifespan=lifespan,
                  description="Live contact-center KPIs from Kafka events. See the README for the contract.")
    app.state.runtime = rt
    for r in ROUTERS:
        app.include_router(r)

    @app.get("/metrics", include_in_schema=True, tags=["metrics"],
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus exposition of the live KPIs and of the pipeline's health."""
        return Response(generate_latest(rt.registry), media_type=CONTENT_TYPE_LATEST)

    return app
