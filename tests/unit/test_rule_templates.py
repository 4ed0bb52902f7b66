"""Rule texts are templates of a few fields with bounded formats (alerts/templates.py): refused with a
reason at save, harmless at render when a bad one gets past the API (the rules topic, an old row)."""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts import templates
from alerts.engine import AlertState, step
from alerts.feed import RulesFeed
from alerts.rulebook import Rulebook
from alerts.rules import DEFAULT_RULE_FILE, Rule, RuleTexts, explain, load_rule_file
from alerts.templates import FIELDS, MAX_FIELDS, MAX_GROWTH, MAX_PRECISION, MAX_WIDTH, check, render
from api.app import create_app
from db.engine import connect
from db.schema import RuleRow
from edge.kafka import KafkaClientConfig
from services.config import Settings

BOMB = "{scope:>3000000000}"
ATTR = "{value.__class__}"
BASE: dict[str, Any] = {"id": "sl", "kpi": "service_level", "scope": "team:*", "window": "5m", "op": "<",
                        "warning": 0.8, "critical": 0.6}
KW: dict[str, Any] = {"scope": "team:billing", "value": 0.4567, "count": 42, "window": "5m", "kpi": "service_level",
                      "severity": "warning", "threshold": 0.8}
ADMIN = "admin-token-for-tests-0123456789"
LOOPBACK = "http://127.0.0.1"


ACCEPTED = [
    ("", ""),
    ("Open the overflow queue.", "Open the overflow queue."),
    ("SL of {scope} is {value:.0%} over {window} ({count} calls)", "SL of team:billing is 46% over 5m (42 calls)"),
    ("{kpi} {severity} {threshold}", "service_level warning 0.8"),
    ("{value:.1%}", "45.7%"),
    ("{value:+.0f}", "+0"),
    ("{value:z.1f}", "0.5"),
    ("{count:d} {count:_d} {count:,} {count:x} {count:#o}", "42 42 42 2a 0o52"),
    ("{count:.2f}", "42.00"),
    ("{scope:>20}|", "        team:billing|"),
    ("{scope:*^16}", "**team:billing**"),
    ("{scope:.4}", "team"),
    ("{value:0>64.10f}", "0" * 52 + "0.4567000000"),  # the bounds themselves
    ("{value:064.10e}", "0" * 48 + "4.5670000000e-01"),
    ("{{literal}} {{scope}} 100%", "{literal} {scope} 100%"),
    ("{scope} 的服务水平为 {value:.0%}（{window}）", "team:billing 的服务水平为 46%（5m）"),
    ("{value:}", "0.4567"),
    (" ".join(["{count}"] * MAX_FIELDS), " ".join(["42"] * MAX_FIELDS)),
]

REFUSED = [
    (BOMB, "field {scope}: width 3000000000 is over 64"),
    ("{value:.3000000000f}", "field {value}: precision 3000000000 is over 10"),
    ("{value:65}", "width 65 is over 64"),
    ("{value:.11f}", "precision 11 is over 10"),
    ("{value:" + "9" * 5000 + "}", "width 99999999999999999999… is over 64"),  # no int() of 5000 digits
    (ATTR, "field {value.__class__}: attribute access and indexing are not allowed; write {value}"),
    ("{scope.__class__.__mro__}", "attribute access and indexing are not allowed; write {scope}"),
    ("{scope[0]}", "field {scope[0]}: attribute access and indexing are not allowed"),
    ("{foo}", "field {foo} is not one of scope, value, count, window, kpi, severity, threshold"),
    ("{ scope }", "field { scope } is not one of"),
    ("{}", "field {} is positional"),
    ("{0}", "field {0} is positional"),
    ("{value!r}", "field {value!r}: conversions (!s, !r, !a) are not allowed"),
    ("{scope!s}", "conversions (!s, !r, !a) are not allowed"),
    ("{value!a:>10}", "conversions (!s, !r, !a) are not allowed"),
    ("{value:{count}}", "field {value:{count}}: a format spec cannot hold { or } (no nested fields)"),
    ("{value:>{count}.{count}}", "no nested fields"),
    ("{value:xyz}", "'xyz' is not a format spec"),
    ("{value:>>>10}", "is not a format spec"),
    ("{count:c}", "format type 'c' (a character from a number) is not allowed"),
    ("{scope:.0%}", "format spec '.0%' does not apply to scope (text): Unknown format code '%'"),
    ("{value:d}", "format spec 'd' does not apply to value (a number)"),
    ("{count:.2d}", "does not apply to count (a whole number): Precision not allowed"),
    ("{severity:=10}", "does not apply to severity (text)"),
    ("{scope", "not a valid template (expected '}' before end of string); write {{ or }} for a literal brace"),
    ("100% }", "not a valid template (Single '}' encountered in format string)"),
    ("{value!}", "not a valid template"),
    (" ".join(["{count}"] * (MAX_FIELDS + 3)), f"at most {MAX_FIELDS} fields in one text; this one has "
                                                f"{MAX_FIELDS + 3}"),
]


@pytest.mark.parametrize(("template", "expected"), ACCEPTED)
def test_accepted_templates_render_as_str_format_would(template: str, expected: str) -> None:
    check(template)
    assert render(template, **KW) == expected == template.format(**KW)


@pytest.mark.parametrize(("template", "reason"), REFUSED)
def test_refused_templates_say_why(template: str, reason: str) -> None:
    with pytest.raises(ValueError) as exc:
        check(template)
    assert reason in str(exc.value)
    assert render(template, **KW) == template  # a refused text is shown as written


def test_the_fields_are_exactly_what_the_engine_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """FIELDS is what `_emit` gives `render` (and docs/api.md lists): every one renders in a transition."""
    assert set(templates.KIND) == set(FIELDS)
    seen: list[set[str]] = []
    real = templates.render

    def spy(template: str, **kw: Any) -> str:
        seen.append(set(kw))
        return real(template, **kw)

    monkeypatch.setattr(templates, "render", spy)
    every = " ".join(f"{{{f}}}" for f in FIELDS)
    r = Rule.model_validate({**BASE, "summary": every, "intervention": every, "texts": {"zh-CN": {"summary": every}}})
    out = step(r, AlertState(), 0.5, 40, 0.0, "team:tech")[1]
    assert seen and all(keys == set(FIELDS) for keys in seen)
    assert out[-1].summary == "team:tech 0.5 40 5m service_level critical 0.6"
    assert out[-1].texts["zh-CN"]["summary"] == out[-1].summary


def test_the_documented_and_default_texts_pass() -> None:
    good, bad = load_rule_file(DEFAULT_RULE_FILE)
    assert bad == [] and any("{value:.0%}" in r.summary for r in good)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith("| `summary`, `intervention` |"))
    assert "`" + " ".join(f"{{{f}}}" for f in FIELDS) + "`" in row
    assert f"width at most {MAX_WIDTH} and precision at most {MAX_PRECISION}" in row
    assert f"at most {MAX_FIELDS} fields in one text" in row


@pytest.mark.parametrize("where", ["summary", "intervention", "zh-CN.summary", "en.intervention"])
@pytest.mark.parametrize(("template", "reason"), [(BOMB, "field {scope}: width 3000000000 is over 64"),
                                                  (ATTR, "field {value.__class__}: attribute access and "
                                                         "indexing are not allowed; write {value}")])
def test_the_rule_model_refuses_them_with_the_reason(where: str, template: str, reason: str) -> None:
    lang, _, field = where.rpartition(".")
    doc = {**BASE, "texts": {lang: {field: template}}} if lang else {**BASE, field: template}
    with pytest.raises(ValidationError) as exc:
        Rule.model_validate(doc)
    loc = f"texts.{lang}.{field}" if lang else field
    assert explain(exc.value) == [f"{loc}: {reason}"]


def test_a_bomb_that_bypassed_validation_is_harmless_in_the_engine() -> None:
    """A rule never validated with these texts (model_copy does not validate): the transitions carry
    the texts as written, at once."""
    r = Rule.model_validate({**BASE, "summary": "ok"}).model_copy(update={
        "summary": BOMB, "intervention": ATTR + " {value:{count}} {scope[0]}",
        "texts": {"zh-CN": RuleTexts.model_construct(summary="{value.__class__.__mro__}", intervention=BOMB)}})
    t0 = time.perf_counter()
    st_, out = step(r, AlertState(), 0.5, 40, 0.0, "team:tech")
    assert time.perf_counter() - t0 < 0.5
    assert [t.kind for t in out] == ["pending", "firing"] and st_.state == "firing"
    t = out[-1]
    assert (t.summary, t.intervention) == (BOMB, r.intervention)
    assert t.texts["zh-CN"] == {"summary": "{value.__class__.__mro__}", "intervention": BOMB}


def test_a_value_the_spec_does_not_fit_leaves_the_text_as_written() -> None:
    assert render("{value:.0%} of {count}", value=None, count=3) == "{value:.0%} of {count}"
    assert render("{threshold:.1f}", threshold=None) == "{threshold:.1f}"
    assert render("{value:.0%}", value=math.nan) == "nan%"
    assert render("{scope} {value}", scope="team:x") == "{scope} {value}"  # a field the caller did not pass

    class Hostile:
        def __format__(self, spec: str) -> str:
            raise RuntimeError("boom")

    assert render("{value:>5}", value=Hostile()) == "{value:>5}"
    assert render("{scope:>64}" * MAX_FIELDS, scope="x" * 10_000) == "{scope:>64}" * MAX_FIELDS  # over MAX_GROWTH


def _feed() -> RulesFeed:
    return RulesFeed(KafkaClientConfig("127.0.0.1:1"), "sqm.rules")


def test_the_worker_feed_skips_a_bad_rule_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    feed = _feed()
    feed.apply(b"sl", orjson.dumps({**BASE, "summary": "{value:.0%}"}))
    feed.apply(b"other", orjson.dumps({**BASE, "id": "other"}))
    assert set(feed.rules) == {"sl", "other"}
    with caplog.at_level(logging.ERROR, logger="alerts.feed"):
        feed.apply(b"sl", orjson.dumps({**BASE, "summary": BOMB}))  # a hand-written record on the topic
        feed.apply(b"attr", orjson.dumps({**BASE, "id": "attr", "texts": {"zh-CN": {"intervention": ATTR}}}))
    assert set(feed.rules) == {"other"}  # the bad versions are not evaluated; the other rules go on
    logged = [r.getMessage() for r in caplog.records]
    assert any("rule sl on sqm.rules skipped" in m and "width 3000000000 is over 64" in m for m in logged)
    assert any("rule attr on sqm.rules skipped" in m and "attribute access" in m for m in logged)


@pytest.fixture
def sqlite(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    shutil.copyfile(sqlite_template, tmp_path / "sqm.db")
    eng = connect(f"sqlite:///{tmp_path}/sqm.db", migrate=False)
    yield eng
    eng.dispose()


def test_a_stored_rule_of_an_older_version_is_reported_not_fatal(sqlite: Engine) -> None:
    now = datetime.now(UTC)
    with Session(sqlite) as s, s.begin():
        s.add(RuleRow(id="old", doc={**BASE, "id": "old", "summary": BOMB}, created_at=now, updated_at=now))
        s.add(RuleRow(id="good", doc={**BASE, "id": "good"}, created_at=now, updated_at=now))
    good, bad = Rulebook(sqlite, "").api_rules()
    assert list(good) == ["good"]
    assert [(e.rule_id, e.errors) for e in bad] == [("old", ["summary: field {scope}: width 3000000000 is over 64"])]


async def _sent() -> None:
    return None


def test_the_api_answers_422_with_the_reason(sqlite: Engine) -> None:
    app = create_app(Settings(admin_token=ADMIN), connect=False)
    producer = MagicMock(spec=AIOKafkaProducer)
    producer.send = AsyncMock(side_effect=lambda *a, **kw: _sent())
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(app, base_url=LOOPBACK) as c:
        app.state.rulebook, app.state.producer = Rulebook(sqlite, ""), producer
        r = c.post("/v1/rules", json={**BASE, "summary": BOMB}, headers=auth)
        assert r.status_code == 422 and r.json() == {"detail": ["summary: field {scope}: width 3000000000 is over 64"]}
        r = c.put("/v1/rules/sl", json={**BASE, "texts": {"zh-CN": {"summary": ATTR}}}, headers=auth)
        assert r.status_code == 422
        assert r.json()["detail"] == ["texts.zh-CN.summary: field {value.__class__}: attribute access and indexing "
                                      "are not allowed; write {value}"]
        assert not producer.send.called  # nothing reached the rules topic
        r = c.post("/v1/rules", json={**BASE, "summary": "{value:.0%} of {scope}"}, headers=auth)
        assert r.status_code == 201, r.text  # the same route saves a good one
        assert producer.send.called


TOKENS = ["{", "}", "{{", "}}", ":", "!", "!r", "!s", ".", "[0]", "__class__", "scope", "value", "count", "window",
          "kpi", "severity", "threshold", "foo", ">", "<", "^", "=", "0", "64", "65", "10", "11", "3000000000", ",",
          "_", "%", "f", "d", "e", "x", "c", "s", "z", "#", "+", " ", "*", "1" * 400]


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=40).map("".join)))
def test_render_never_raises_and_stays_bounded(template: str) -> None:
    for kw in (KW, {**KW, "value": math.nan, "threshold": None}, {**KW, "value": -1e300, "count": 10**30}, {}):
        out = render(template, **kw)
        assert len(out) <= len(template) + MAX_GROWTH
        try:
            check(template)
        except ValueError:
            assert out == template
            continue
        # accepted: bounded formats, so str.format is safe here and must agree (when it works at all)
        try:
            expected = template.format(**kw)
        except (KeyError, ValueError, TypeError, OverflowError):
            assert out == template
        else:
            assert out == expected
            assert len(out) <= len(template) + MAX_FIELDS * (MAX_WIDTH + 400)
