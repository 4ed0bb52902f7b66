"""PostgreSQL stopped for 25-65 s (over a minute boundary) while events flow, with real processes: a
KPI worker, the API and the history writer on the embedded broker, and a PostgreSQL server of the
test's own.

During the outage the live figures (/v1/kpis, with `compare` too, the board, the KPI series of
/metrics) answer 200 and count the events sent meanwhile; the database routes answer 503 with
Retry-After; a second API and a second history writer start during it; no process exits. Once
PostgreSQL is back, the database routes answer again and the history holds every minute of the
outage with every event.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.broker import EmbeddedBroker, free_port
from services.loadgen import ticket
from services.producer import make_producer, send_events
from stream.clock import rfc3339
from tests.support.postgres import ThrowawayPostgres
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.integration
TOKEN = "outage-admin-token-0123456789"
TEAM = "outage"
SCOPE = f"team:{TEAM}"
OUTAGE_S = 25.0  # at least; longer when needed to reach 5 s into the next minute
DB_ROUTES = ["/v1/rules", "/v1/alerts", "/v1/silences", f"/v1/kpis/history?kpi=tickets_created&scope={SCOPE}"]


class Traffic:
    """Ticket creations for one team, five every 0.5 s, from a thread; `sent` counts the flushed ones."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sent = 0
        self.first_ts = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = make_producer(self.stack.settings)
        i = 0
        while not self._stop.is_set():
            now = time.time()
            self.first_ts = self.first_ts or now
            events = [ticket("ticket.created", now, now, f"out{i + k}", team=TEAM) for k in range(5)]
            send_events(producer, self.stack.settings, events)
            producer.flush()
            i += len(events)
            self.sent = i
            self._stop.wait(0.5)
        producer.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        return self.sent


def created(client: httpx.Client, **params: str) -> tuple[int, dict[str, Any]]:
    r = client.get("/v1/kpis", params={"scope": SCOPE, "window": "1h", **params})
    return r.status_code, r.json()


def board_backlog(client: httpx.Client) -> int:
    r = client.get("/board", params={"team": TEAM})
    assert r.status_code == 200
    m = re.search(r'data-kpi="backlog" data-scope="team:outage" data-value="(\d+)(?:\.0)?"', r.text)
    assert m, "the board shows the backlog tile"
    return int(m.group(1))


def metrics_created(client: httpx.Client) -> float:
    r = client.get("/metrics")
    assert r.status_code == 200
    m = re.search(r'sqm_tickets_created\{kind="team",scope="team:outage",window="1h"\} (\S+)', r.text)
    return float(m.group(1)) if m else 0.0


def history_counts(client: httpx.Client, start: float) -> dict[int, int]:
    r = client.get("/v1/kpis/history", params={"scope": SCOPE, "kpi": "tickets_created", "step": "1m",
                                               "from": rfc3339(start - 60), "to": rfc3339(time.time() + 60)})
    r.raise_for_status()
    return {int(_ts(p["t"])): p["count"] for p in r.json()["points"]}


def _ts(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_database_outage_costs_only_the_database_routes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    pg = ThrowawayPostgres().start()
    stack = Stack(broker, tmp_path, SQM_DATABASE_URL=pg.url, SQM_ADMIN_TOKEN=TOKEN, SQM_RULES_FILE="")
    traffic = Traffic(stack)
    api = httpx.Client(base_url=stack.url, timeout=10)
    timings: dict[str, float] = {}
    try:
        stack.worker(role="kpis")
        stack.history_writer()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        traffic.start()
        wait_for(lambda: created(api)[1]["kpis"]["tickets_created"]["count"] >= 20, 60, "live figures", stack)
        wait_for(lambda: sum(history_counts(api, traffic.first_ts).values()) > 0, 30, "history rows", stack)
        assert "compare_error" not in created(api, compare="yesterday")[1]

        pg.stop("fast", remove=False)
        down = time.time()
        api2_port = free_port()
        stack.api("api2", port=api2_port)  # an API that starts while the database is down
        timings["api2 up after"] = time.time() - down
        stack.history_writer("history2")  # and a history writer
        api2 = httpx.Client(base_url=f"http://127.0.0.1:{api2_port}", timeout=10)
        checks, end = 0, max(down + OUTAGE_S, (down // 60 + 1) * 60 + 5)
        while time.time() < end:
            sent = traffic.sent
            wait_for(lambda s=sent: created(api)[1]["kpis"]["tickets_created"]["count"] >= s, 10,
                     "the events sent during the outage counted", stack)
            status, body = created(api, compare="yesterday")
            assert status == 200 and "database is unavailable" in body["compare_error"], body
            assert body["kpis"]["tickets_created"]["count"] >= sent and "previous" not in body["kpis"]["csat"]
            assert metrics_created(api) >= sent
            assert board_backlog(api) >= sent
            assert api.get("/v1/targets").status_code == 200  # served from memory
            for client in (api, api2):
                for path in DB_ROUTES:
                    r = client.get(path)
                    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, (path, r.text)
            r = api.put("/v1/targets", json={"kpi": "csat", "scope": SCOPE, "target": 0.9},
                        headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 503, r.text
            assert api2.get("/v1/kpis", params={"scope": "all"}).status_code == 200
            assert "not connected since" in api2.get("/v1/rules").json()["detail"]
            assert api.get("/readyz").json()["checks"]["database"] is False
            assert stack.exited() == {}, stack.logs()
            checks += 1
            time.sleep(1.0)
        assert checks >= 5

        pg.restart()
        up = time.time()
        timings["outage"] = up - down
        for name, client in (("api", api), ("api2", api2)):
            wait_for(lambda c=client: c.get("/v1/rules").status_code == 200, 40, f"{name} reading rules", stack)
            timings[f"{name} database routes back after"] = time.time() - up
        n = traffic.stop()
        wait_for(lambda: created(api)[1]["kpis"]["tickets_created"]["count"] == n, 30, "every event live", stack)

        def caught_up() -> bool:
            counts = history_counts(api, traffic.first_ts)
            return sum(counts.values()) == n and all(
                counts.get(m, 0) > 0 for m in range(int(down // 60 * 60), int(up // 60 * 60) + 60, 60))

        wait_for(caught_up, 40, "the history to hold every minute of the outage", stack)
        timings["history caught up after"] = time.time() - up
        assert "compare_error" not in created(api, compare="yesterday")[1]
        assert stack.exited() == {}, stack.logs()
        for name in ("history", "history2"):  # each writer waited, then wrote what had waited
            wait_for(lambda n=name: "the database is back after" in (tmp_path / f"{n}.log").read_text(), 20,
                     f"{name} writing again", stack)
            assert "the database is unavailable" in (tmp_path / f"{name}.log").read_text()
        print("\n" + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + f"; {n} events")
    finally:
        traffic.stop()
        stack.stop()
        pg.stop("immediate")
