"""The API and the board agree with themselves: an alert's live value is /v1/kpis' figure, a tile is
never "OK" beside a firing alert on its KPI, tiles that do not apply are left out, acknowledging
needs no body, live-state tiles have a past. A view fed in-process; the database on SQLite and
PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alerts.engine import AlertState, step
from alerts.history import AlertRepository
from alerts.notifier import Notifier
from alerts.routing import NotifyConfig
from alerts.rules import Rule
from api.alert_rows import alert_view
from api.app import create_app
from api.board import model
from api.metrics import timing_families
from api.targets import Targets, load_targets
from services.config import Settings
from services.loadgen import random_stream
from stream.folds import IX, Acc
from stream.live_samples import LiveSamples
from stream.view import View
from tests.support.pipeline import run, to_messages

ADMIN = "admin-token-for-tests-0123456789"
LOOPBACK = "http://127.0.0.1"
NOTIFY = NotifyConfig.model_validate({"targets": [{"name": "log", "type": "log", "path": "/dev/null"}]})


async def fed_view(now: float) -> View:
    view = View(60)
    for k, v in (await run(to_messages(random_stream(1500, now, seed=4)))).all_records():
        view.apply(k, v)
    return view


def fire(engine: Engine, rule: Rule, scope: str, value: float, now: float) -> str:
    st, made = step(rule, AlertState(), value, 100, now - 30, scope)
    Notifier(engine, NOTIFY, base_url="http://sqm").ingest([t.to_json() for t in made])
    return made[0].alert_id


async def test_live_values_are_the_kpis_figure_and_acks_need_no_body(engine: Engine) -> None:
    now = time.time()
    app = create_app(Settings(admin_token=ADMIN), connect=False)
    view: View = app.state.view
    for k, v in (await run(to_messages(random_stream(1500, now, seed=4)))).all_records():
        view.apply(k, v)
    app.state.history, app.state.db = AlertRepository(engine), engine
    rule = Rule.model_validate({"id": "ab", "kpi": "abandonment_rate", "scope": "team:*", "window": "1h", "op": ">",
                                "warning": 0.0, "critical": 0.5})
    aid = fire(engine, rule, "team:billing", 0.9, now)
    with TestClient(app, base_url=LOOPBACK) as c:
        a = c.get("/v1/alerts", params={"state": "firing"}).json()["alerts"][0]
        k = c.get("/v1/kpis", params={"scope": "team:billing", "window": "1h"}).json()["kpis"]["abandonment_rate"]
        assert (a["live_value"], a["live_count"]) == (pytest.approx(k["value"]), k["count"])
        assert a["value"] == 0.9 and a["live_value"] != a["value"]  # the value that fired it, beside the one now
        assert c.post(f"/v1/alerts/{aid}/ack").status_code == 401
        r = c.post(f"/v1/alerts/{aid}/ack", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["acked_by"] == "token" and body["ack_note"] == ""
        assert body["follow_up"] == {"readings": [{"after_s": 0, "value": pytest.approx(k["value"]),
                                                   "count": k["count"]}], "verdict": "waiting"}
        again = c.post(f"/v1/alerts/{aid}/ack", json={"note": "me too"}, headers={"Authorization": f"Bearer {ADMIN}"})
        assert again.status_code == 409
        (timing,) = c.get("/v1/alerts/timing").json()
        assert timing["rule_id"] == "ab" and timing["measure"] == "ack" and timing["count"] == 1
        detail = c.get(f"/v1/alerts/{aid}").json()
        assert [h["kind"] for h in detail["history"]] == ["pending", "firing", "acknowledged"]
    # /metrics: a histogram per rule, from counters kept in the database
    samples = {(s.name, s.labels.get("le")): s.value for fam in timing_families(AlertRepository(engine).stats())
               for s in fam.samples if s.labels["rule"] == "ab"}
    assert samples[("sqm_alert_ack_seconds_count", None)] == 1
    assert samples[("sqm_alert_ack_seconds_bucket", "+Inf")] == 1
    assert samples[("sqm_alert_ack_seconds_bucket", "30")] == 0
    assert samples[("sqm_alert_ack_seconds_bucket", "60")] == 1  # fired 30 s before the acknowledgement


async def test_a_tile_is_never_ok_beside_a_firing_alert_on_its_kpi(engine: Engine) -> None:
    now = time.time()
    view = await fed_view(now)
    sl = Rule.model_validate({"id": "sl", "kpi": "service_level", "scope": "team:*", "window": "1h", "op": "<",
                              "warning": 0.0, "critical": -1.0})  # lines the board's 1h figure never crosses
    fast = Rule.model_validate({"id": "sl5", "kpi": "service_level", "scope": "team:*", "window": "5m", "op": "<",
                                "warning": 2.0, "critical": 1.5})
    aid = fire(engine, fast, "team:billing", 0.4, now)
    row = AlertRepository(engine).alert_row(aid)
    cfg = model.BoardConfig(scope="team:billing")
    src = model.Sources(rules=[sl], alerts=[alert_view(row, view, now=now)])
    tile = next(t for t in model.tiles(view, cfg, src, now) if t.kpi == "service_level")
    assert (tile.status, tile.alert_window) == ("critical", "5m")
    alone = next(t for t in model.tiles(view, cfg, model.Sources(rules=[sl]), now) if t.kpi == "service_level")
    assert (alone.status, alone.alert_window) == ("ok", None)
    # on another scope's board the alert does not colour the tile
    other = next(t for t in model.tiles(view, model.BoardConfig(scope="team:tech"), src, now)
                 if t.kpi == "service_level")
    assert other.status == "ok"


def test_tiles_that_do_not_apply_are_left_out() -> None:
    chat_only = Acc()
    chat_only.v[IX["created"]] = 3.0
    assert model.applies("service_level", "all", Acc())  # the whole centre always shows every tile
    assert model.applies("csat", "team:new", Acc())  # so does a scope with no events yet
    assert not model.applies("abandonment_rate", "agent:ana", chat_only)
    assert not model.applies("asa_s", "agent:ana", chat_only) and model.applies("backlog", "agent:ana", chat_only)
    assert not model.applies("csat", "team:a", chat_only)
    calls = Acc()
    calls.v[IX["answered"]] = 5.0
    assert model.applies("asa_s", "agent:ana", calls) and not model.applies("service_level", "agent:ana", calls)
    assert model.applies("service_level", "team:a", calls)


def test_live_samples_keep_an_hour_of_minutes_for_every_scope() -> None:
    s = LiveSamples(("backlog", "calls_waiting"), minutes=65)
    t0 = 1_800_000_000 // 60 * 60
    for i in range(70):
        s.record("team:a", t0 + 60 * i, {"backlog": (float(i), i)})
    series = s.series("team:a", "backlog", last=t0 + 60 * 69, n=60)
    assert series == [float(i) for i in range(10, 70)]
    assert s.series("team:a", "calls_waiting", last=t0 + 60 * 69, n=3) == [None] * 3
    assert s.series("team:a", "backlog", last=t0 + 60 * 75, n=3) == [None] * 3  # nothing sampled since
    s.keep(["team:b"])
    assert len(s) == 0


def test_the_default_targets_judge_every_headline_tile_of_the_centre() -> None:
    targets = Targets(load_targets(None))
    missing = [k for k in model.TILES if targets.get("all", k) is None]
    assert not missing
    # the figures the practice names
    want: dict[tuple[str, str], Any] = {("all", "fcr_rate"): 0.85, ("all", "csat"): 0.90,
                                        ("all", "complaint_rate"): 0.01, ("tier:vip", "first_response_p90_s"): 1800,
                                        ("all", "service_level"): 0.80, ("all", "complaint_resolved_24h_rate"): 0.95}
    assert {k: targets.get(*k) for k in want} == want
    assert load_targets("") == {}


def test_every_kpi_has_a_label_in_both_languages() -> None:
    """Alert rows, tiles and notifications name KPIs by their labels: none may show a raw name."""
    from stream.kpis import KPIS, LIVE
    from stream.labels import KPI_LABELS, LANGS

    names = [k.name for k in KPIS] + [d.name for d in LIVE]
    missing = [(n, lang) for n in names for lang in LANGS if not KPI_LABELS.get(n, {}).get(lang)]
    assert not missing, missing
