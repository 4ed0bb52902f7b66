"""Demo traffic producer: `python -m services.simulator` (what `make run` starts with SQM_DEMO=1)."""

from __future__ import annotations

import logging
import threading
import time

from db.engine import make_engine
from history.store import HistoryStore
from services.config import Settings
from services.demo import DemoTraffic, history
from services.producer import make_producer, send_events
from services.signals import stop_event

log = logging.getLogger("sqm.simulator")


HISTORY_DAYS = 29  # what the demo writes of its past: four weeks and the hours before them (the level)
SOURCE = "demo:history"


def write_history(settings: Settings, start: float, events_from: float, stop: threading.Event) -> None:
    """The demo's past four weeks into the KPI history (once the API has migrated the database), up to
    where its events begin (or the live history, if an earlier run wrote some): replaced at each start."""
    engine = make_engine(settings.database_url)
    t0 = time.monotonic()
    while not stop.is_set():
        try:
            store = HistoryStore(engine)
            live = store.live_since()
            until = min(events_from, float(live) if live is not None else float("inf"))
            rows = history(until, HISTORY_DAYS, rate=settings.demo_rate, seed=int(start) % 1000)
            store.replace_source(SOURCE, [])
            n = 0
            for i in range(0, len(rows), 2000):  # short transactions: the other writers are not held up
                n += store.upsert(rows[i:i + 2000], SOURCE)
                stop.wait(0.02)
            log.info("demo history: %d rows of %d days written in %.1f s", n, HISTORY_DAYS, time.monotonic() - t0)
            break
        except Exception as exc:  # the database is not migrated yet (the API does it), or not up
            log.info("demo history waits for the database (%s)", type(exc).__name__)
            stop.wait(2.0)
    engine.dispose()


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(levelname)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = stop_event()
    producer = make_producer(settings)
    start = time.time()
    traffic = DemoTraffic(start, rate=settings.demo_rate)
    writer = threading.Thread(target=write_history, args=(settings, start, traffic.events_from, stop),
                              name="demo history", daemon=True)
    writer.start()
    inc = traffic.incidents[0]
    log.info("demo traffic at %.1f contacts/s at the peak, %d agents on the rosters; first incident in team %s "
             "at +%.0f s for %.0f s", settings.demo_rate, sum(len(a) for a in traffic.agents.values()), inc.team,
             inc.start - time.time(), inc.end - inc.start)
    total = 0
    while not stop.is_set():
        total += send_events(producer, settings, traffic.due(time.time()))
        producer.flush()
        time.sleep(0.5)
    producer.flush()
    producer.close()
    log.info("sent %d events", total)


if __name__ == "__main__":
    main()
