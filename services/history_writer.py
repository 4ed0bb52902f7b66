"""The history writer process: `python -m services.history_writer` (state topic -> KPI history in SQL).

One is enough (it reads every partition); a second one writes the same rows (harmless, wasted work).
It starts while the database is down and waits for it: the migrations and the writes are retried
(history/writer.py), and the minutes of the outage are written once it answers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from db.engine import make_engine, upgrade
from history.store import HistoryStore
from history.writer import HistoryWriter
from services import health
from services.config import Settings
from services.topics import ensure_topics

log = logging.getLogger("sqm.history")


async def run(settings: Settings) -> None:
    engine = make_engine(settings.database_url)  # connects at the first write, not here
    writer = HistoryWriter(HistoryStore(engine), settings.kafka, settings.state_topic,
                           minute_days=settings.history_minute_days, keep_days=settings.history_days,
                           fetch_max_wait_ms=settings.fetch_max_wait_ms, prepare=lambda: upgrade(engine))
    health.watch(settings.health_port, lambda: health.ready_unless(migrations_pending=writer.prepare is not None,
                                                                   database_down=writer.down_since is not None))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await writer.start()
    log.info("history writer: minute rows kept %.0f days, history %.0f days", settings.history_minute_days,
             settings.history_days)
    await stop.wait()
    await writer.stop()
    await writer.flush(time.time(), force=True)  # what changed since the last flush
    engine.dispose()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s history %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    ensure_topics(settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
