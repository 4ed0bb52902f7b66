"""The notifier's outbox against concurrent notifiers, on a real SQLite file and a real PostgreSQL
with a simulated clock: the idempotency key survives redeliveries, repeats are keyed by their
sequence (two notifiers queue one), a result is recorded only under the lease it was claimed with,
stored errors are short and bodiless, and a silence stored with a now-refused regex breaks nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.delivery import ERROR_MAX, IDEMPOTENCY_HEADER, Failure, idempotency_key
from alerts.history import AlertRepository
from alerts.notifier import Notifier, repeat_key
from alerts.routing import NotifyConfig
from api.app import create_app
from db.schema import SilenceRow
from services.config import Settings
from tests.support.alert_data import SL_RULE, outbox, transitions

T0 = 1_800_000_000.0
ADMIN = "admin-token-for-tests-0123456789"
RULE = SL_RULE
CONFIG = NotifyConfig.model_validate({
    "targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"},
                {"name": "am", "type": "alertmanager", "url": "http://am.test"}],
    "routes": [{"targets": ["hook", "am"], "repeat_interval": "10m"}]})




# -- (2) idempotency key ----------------------------------------------------------------------------------
async def test_a_redelivery_carries_the_same_idempotency_key(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm", backoff_max_s=1)
    n.ingest(transitions([(T0, 0.7), (T0 + 20, 0.95)]))  # firing, resolved
    seen: list[tuple[str, str | None, str]] = []  # target, the header, the key in the body

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        key = body["idempotency_key"] if req.url.host == "hook.test" else body[0]["annotations"]["idempotency_key"]
        seen.append((req.url.host.split(".")[0], req.headers.get(IDEMPOTENCY_HEADER), key))
        first = [x for x in seen if x[0] == seen[-1][0] and x[2] == key] == [seen[-1]]
        return httpx.Response(503 if first else 200)  # each notification's first attempt fails

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        for t in range(1, 12):  # the first attempts fail, the retries (1 s backoff) go through
            await n.deliver(client, T0 + 20 + t)
    rows = outbox(engine)
    assert sorted((r.target, r.reason) for r in rows) == [("am", "firing"), ("am", "resolved"), ("hook", "firing"),
                                                          ("hook", "resolved")]
    assert all(r.delivered_at is not None and r.attempts == 2 for r in rows), "each one failed once, then went out"
    for row in rows:
        want = idempotency_key(row.dedupe_key, row.target)
        assert [(t, h, k) for t, h, k in seen if k == want] == [(row.target, want, want)] * 2, "the same both times"
    assert len({k for _, _, k in seen}) == 4 and len(seen) == 8


# -- (3) repeats keyed by their sequence ----------------------------------------------------------------------
def hook_only() -> NotifyConfig:
    return NotifyConfig.model_validate({"targets": [{"name": "hook", "type": "webhook", "url": "http://hook.test/h"}],
                                        "routes": [{"targets": ["hook"], "repeat_interval": "10m"}]})


def test_repeat_keys_are_the_sequence_from_firing_not_the_clock(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7)]))
    assert n.schedule(T0 + 601.4) == 1
    assert n.schedule(T0 + 1201.9) == 1
    assert [r.dedupe_key for r in outbox(engine) if r.reason == "repeat"] == [
        f"{r.alert_id}/repeat/600s/{i}" for i, r in enumerate(
            [r for r in outbox(engine) if r.reason == "repeat"], start=1)]
    fired = datetime.fromtimestamp(T0, UTC)
    assert repeat_key("a", "repeat", fired, 600, fired + timedelta(seconds=1799.999)) == "a/repeat/600s/2"


def test_two_notifiers_scheduling_the_same_repeat_queue_it_once(engine: Engine) -> None:
    one = Notifier(engine, hook_only(), base_url="http://sqm", owner="one")
    two = Notifier(engine, hook_only(), base_url="http://sqm", owner="two")
    one.ingest(transitions([(T0, 0.7)]))
    # `two` has read when the alert was last told and decided on a repeat; just before its insert, `one`
    # (a second earlier on its clock) queues and commits the same repeat
    raced = []

    def before_insert(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX") and not raced:
            raced.append(True)
            assert one.schedule(T0 + 601) == 1

    event.listen(engine, "before_cursor_execute", before_insert)
    try:
        assert two.schedule(T0 + 602) == 0, "the same repeat: the later insert is dropped"
    finally:
        event.remove(engine, "before_cursor_execute", before_insert)
    assert raced
    assert [(r.reason, r.target) for r in outbox(engine)] == [("firing", "hook"), ("repeat", "hook")]
    # a restarted notifier (a new owner) decides the same: nothing new
    assert Notifier(engine, hook_only(), base_url="http://sqm").schedule(T0 + 603) == 0
    assert len(outbox(engine)) == 2


# -- (4) results recorded under the lease they were claimed with ---------------------------------------------
def test_a_late_result_does_not_overwrite_the_notifier_that_took_the_lease(engine: Engine) -> None:
    one = Notifier(engine, hook_only(), base_url="http://sqm", owner="one", lease_s=30)
    two = Notifier(engine, hook_only(), base_url="http://sqm", owner="two", lease_s=30)
    one.ingest(transitions([(T0, 0.7)]))
    [mine] = one.claim(T0 + 1)
    # `one` hangs on a slow target past its lease; `two` claims the row, delivers it and records that
    [theirs] = two.claim(T0 + 40)
    assert theirs.id == mine.id
    two._finish([(theirs, None)], T0 + 41)
    # `one`'s send times out at last: its failure must not turn the delivered row back into a failing one
    one._finish([(mine, Failure(False, "ReadTimeout: timed out"))], T0 + 45)
    [row] = outbox(engine)
    assert row.delivered_at is not None and row.last_error is None and row.attempts == 1
    assert row.lease_owner is None and row.parked_at is None


def test_a_late_success_does_not_clear_a_lease_another_notifier_holds(engine: Engine) -> None:
    one = Notifier(engine, hook_only(), base_url="http://sqm", owner="one", lease_s=30)
    two = Notifier(engine, hook_only(), base_url="http://sqm", owner="two", lease_s=30)
    one.ingest(transitions([(T0, 0.7)]))
    [mine] = one.claim(T0 + 1)
    [theirs] = two.claim(T0 + 40)
    one._finish([(mine, None)], T0 + 42)
    [row] = outbox(engine)
    assert row.lease_owner == "two" and row.delivered_at is None and row.attempts == 0, "two's to record"
    two._finish([(theirs, None)], T0 + 43)
    [row] = outbox(engine)
    assert row.delivered_at is not None and row.lease_owner is None and row.attempts == 1


def test_an_expired_lease_nobody_took_is_still_recorded(engine: Engine) -> None:
    one = Notifier(engine, hook_only(), base_url="http://sqm", owner="one", lease_s=30)
    one.ingest(transitions([(T0, 0.7)]))
    [mine] = one.claim(T0 + 1)
    one._finish([(mine, None)], T0 + 100)
    [row] = outbox(engine)
    assert row.delivered_at is not None and row.lease_owner is None


# -- (6) what is stored of a failure -----------------------------------------------------------------------
async def test_last_error_is_the_status_line_only_and_short(engine: Engine) -> None:
    n = Notifier(engine, CONFIG, base_url="http://sqm")
    n.ingest(transitions([(T0, 0.7)]))

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "hook.test":
            return httpx.Response(500, text="Traceback ... api_key=SECRET " + "z" * 10_000)
        raise httpx.ConnectError("cannot reach http://am.test/api/v2/alerts?token=SECRET " + "q" * 10_000)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await n.deliver(client, T0 + 1)
    rows = {r.target: r for r in outbox(engine)}
    assert rows["hook"].last_error == "HttpStatusError: hook: HTTP 500 Internal Server Error"
    am = rows["am"].last_error
    assert am is not None and am.startswith("ConnectError: cannot reach http://am.test/… ")
    assert len(am) <= ERROR_MAX and "SECRET" not in am


# -- (5) a silence stored before its regex was refused --------------------------------------------------------
def test_a_stored_silence_with_a_refused_regex_silences_nothing_and_breaks_nothing(engine: Engine) -> None:
    n = Notifier(engine, hook_only(), base_url="http://sqm")
    with Session(engine) as s, s.begin():
        s.add(SilenceRow(id="old", matchers=[{"name": "scope", "value": "(a+)+$", "op": "=~"}],
                         starts_at=datetime.fromtimestamp(T0 - 60, UTC), ends_at=datetime.fromtimestamp(T0 + 9e5, UTC),
                         created_by="x", comment="stored before the check", created_at=datetime.fromtimestamp(T0, UTC),
                         expired=False))
    assert n.ingest(transitions([(T0, 0.7)], scope="a" * 40)) == 2
    assert [r.reason for r in outbox(engine)] == ["firing"], "delivered, not silenced, not parked"
    assert n.schedule(T0 + 601) == 1


def test_the_silences_api_refuses_a_regex_that_can_backtrack_catastrophically(engine: Engine) -> None:
    app = create_app(Settings(admin_token=ADMIN), connect=False)
    app.state.history, app.state.db = AlertRepository(engine), engine
    admin = {"Authorization": f"Bearer {ADMIN}"}
    silence = {"ends_at": "2099-01-01T00:00:00Z", "created_by": "lead", "comment": "maintenance"}
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/v1/silences", headers=admin,
                   json={**silence, "matchers": [{"name": "scope", "op": "=~", "value": "(a+)+$"}]})
        assert r.status_code == 422 and "exponential time" in r.text
        r = c.post("/v1/silences", headers=admin,
                   json={**silence, "matchers": [{"name": "scope", "op": "=~", "value": "team:(eu|us)-.*"}]})
        assert r.status_code == 201, r.text
