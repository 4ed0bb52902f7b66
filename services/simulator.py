"""Demo traffic producer: `python -m services.simulator` (what `make run` starts with SQM_DEMO=1)."""

from __future__ import annotations

import logging
import time

from services.config import Settings
from services.demo import DemoTraffic
from services.producer import make_producer, send_events
from services.signals import stop_event

log = logging.getLogger("sqm.simulator")


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(levelname)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = stop_event()
    producer = make_producer(settings)
    traffic = DemoTraffic(time.time(), rate=settings.demo_rate)
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
