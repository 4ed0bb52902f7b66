"""Delivery hardening: e-mail only over verified TLS when it logs in (a real aiosmtpd relay with a
certificate of a throw-away CA made here with the openssl CLI), idempotency keys in the bodies,
failure reasons without response bodies, and operators' regular expressions bounded (routes and
silences)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from alerts.delivery import (
    ERROR_MAX,
    IDEMPOTENCY_HEADER,
    HttpStatusError,
    alertmanager_body,
    classify,
    idempotency_key,
    render,
    send,
    stored_error,
    webhook_body,
)
from alerts.routing import (
    PATTERN_MAX,
    SUBJECT_MAX,
    DeliveryTarget,
    Matcher,
    NotifyConfig,
    Route,
    load_notify_file,
    regex_fullmatch,
    regex_problem,
    silenced_by,
)
from services.broker import free_port
from tests.support.alert_data import alert

BASE = "http://sqm.test"



# -- a relay with a certificate of a private CA -------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate (what smtp_ca_file names)
    cert: Path  # the relay's, for localhost and 127.0.0.1, signed by the CA
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    assert shutil.which("openssl"), "the openssl CLI makes the test CA (Debian's openssl package)"
    d = tmp_path_factory.mktemp("pki")
    (d / "openssl.cnf").write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = sqm test CA\n"
        "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier = hash\n"
        "[leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
        "authorityKeyIdentifier = keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, cwd=d, timeout=60)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-config", "openssl.cnf",
            "-extensions", "ca")
    openssl("req", *ec, "-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=localhost", "-config",
            "openssl.cnf")
    openssl("x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "relay.pem", "-days", "2", "-extfile", "openssl.cnf", "-extensions", "leaf")
    return Pki(d / "ca.pem", d / "relay.pem", d / "relay.key")


class TlsRelay:
    """A real SMTP server (aiosmtpd) with TLS, STARTTLS (required before anything else) or implicit,
    that records each AUTH attempt and each message it accepts."""

    def __init__(self, pki: Pki, *, implicit: bool) -> None:
        self.port = free_port()
        self.auth: list[tuple[str, bytes]] = []
        self.messages: list[Message] = []
        relay = self

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            relay.auth.append((mechanism, bytes(data.login)))
            return AuthResult(success=data.login == b"sqm" and data.password == b"s3cret")

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                relay.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        # aiosmtpd counts only STARTTLS as TLS for AUTH: over implicit TLS it must be told not to require it
        tls: dict[str, Any] = ({"ssl_context": pki.server_context(), "auth_require_tls": False} if implicit else
                               {"tls_context": pki.server_context(), "require_starttls": True})
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_required=True, **tls)
        self.controller.start()

    def target(self, **over: Any) -> DeliveryTarget:
        return DeliveryTarget.model_validate({"name": "mail", "type": "email", "smtp_host": "127.0.0.1",
                                      "smtp_port": self.port, "from": "sqm@example.com", "to": ["leads@example.com"],
                                      "smtp_user": "sqm", "smtp_password": "s3cret", **over})


@pytest.fixture
def starttls_relay(pki: Pki) -> Iterator[TlsRelay]:
    relay = TlsRelay(pki, implicit=False)
    yield relay
    relay.controller.stop()


@pytest.fixture
def smtps_relay(pki: Pki) -> Iterator[TlsRelay]:
    relay = TlsRelay(pki, implicit=True)
    yield relay
    relay.controller.stop()


async def mail(target: DeliveryTarget) -> None:
    async with httpx.AsyncClient() as client:
        await send(target, alert(), "firing", client=client, base_url=BASE, timeout=5, now=time.time(),
                   idempotency_key="k" * 32)


async def test_starttls_refuses_a_certificate_it_cannot_verify_before_any_login(starttls_relay: TlsRelay) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        await mail(starttls_relay.target(smtp_tls="starttls"))
    failure = classify(err.value)
    assert failure.permanent and "CERTIFICATE_VERIFY_FAILED" in failure.reason
    assert starttls_relay.auth == [] and starttls_relay.messages == [], "no password, no message to that relay"
    # the older spelling means the same
    with pytest.raises(ssl.SSLCertVerificationError):
        await mail(starttls_relay.target(smtp_starttls=True))
    assert starttls_relay.auth == [] and starttls_relay.messages == []


async def test_starttls_with_the_relays_ca_logs_in_and_sends(starttls_relay: TlsRelay, pki: Pki) -> None:
    await mail(starttls_relay.target(smtp_tls="starttls", smtp_ca_file=str(pki.ca)))
    assert [login for _, login in starttls_relay.auth] == [b"sqm"]
    [m] = starttls_relay.messages
    assert m["Subject"] == "[CRITICAL] sl-low on team:billing"
    assert m["Message-ID"] == f"<{'k' * 32}.sqm@example.com>", "the same on a redelivery"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtps_checks_the_certificate_too(smtps_relay: TlsRelay, pki: Pki) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await mail(smtps_relay.target(smtp_tls="smtps"))
    assert smtps_relay.auth == [] and smtps_relay.messages == []
    await mail(smtps_relay.target(smtp_tls="smtps", smtp_ca_file=str(pki.ca)))
    assert len(smtps_relay.auth) == 1 and len(smtps_relay.messages) == 1


def test_a_login_without_tls_is_refused_when_the_target_is_loaded(tmp_path: Path) -> None:
    mail_target = {"name": "mail", "type": "email", "smtp_host": "mail", "from": "sqm@example.com",
                   "to": ["leads@example.com"]}
    for insecure in ({"smtp_user": "sqm", "smtp_password": "pw"}, {"smtp_password": "pw"},
                     {"smtp_user": "sqm", "smtp_password": "pw", "smtp_tls": "none"}):
        with pytest.raises(ValidationError, match="would send the password in clear"):
            NotifyConfig.model_validate({"targets": [{**mail_target, **insecure}]})
    with pytest.raises(ValidationError, match="contradicts"):
        DeliveryTarget.model_validate({**mail_target, "smtp_starttls": True, "smtp_tls": "smtps"})
    with pytest.raises(ValidationError, match="smtp_ca_file needs"):
        DeliveryTarget.model_validate({**mail_target, "smtp_ca_file": "ca.pem"})
    # what stays valid: a relay without login in clear (as before), the older smtp_starttls, SMTPS on 465
    assert DeliveryTarget.model_validate(mail_target).tls == "none"
    assert DeliveryTarget.model_validate({**mail_target, "smtp_starttls": True, "smtp_user": "u"}).tls == "starttls"
    smtps = DeliveryTarget.model_validate({**mail_target, "smtp_tls": "smtps", "smtp_user": "u"})
    assert (smtps.tls, smtps.smtp_port) == ("smtps", 465)
    assert DeliveryTarget.model_validate({**mail_target, "smtp_tls": "smtps", "smtp_port": 2465}).smtp_port == 2465
    # a CA file that is not there, or holds no certificate, fails at load
    notify = tmp_path / "notify.yaml"
    notify.write_text(json.dumps({"targets": [{**mail_target, "smtp_tls": "starttls",
                                               "smtp_ca_file": str(tmp_path / "missing.pem")}]}))
    with pytest.raises(ValueError, match="smtp_ca_file"):
        load_notify_file(str(notify), "var/alerts.log")
    (tmp_path / "missing.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_notify_file(str(notify), "var/alerts.log")


# -- idempotency keys ----------------------------------------------------------------------------------------
def test_the_idempotency_key_is_in_the_webhook_body_and_an_alertmanager_annotation() -> None:
    key = idempotency_key("a1b2c3/2", "hook")
    assert len(key) == 32 and key == idempotency_key("a1b2c3/2", "hook")
    assert len({key, idempotency_key("a1b2c3/3", "hook"), idempotency_key("a1b2c3/2", "am")}) == 3
    assert webhook_body(alert(), "firing", BASE, key)["idempotency_key"] == key
    [am] = alertmanager_body(alert(), BASE, None, 1.0, key)
    assert am["annotations"]["idempotency_key"] == key
    assert key not in am["labels"].values() and "idempotency_key" not in am["labels"], "labels are the identity"
    log = DeliveryTarget.model_validate({"name": "file", "type": "log", "path": "x.log"})
    line = render(log, alert(), "firing", BASE, 1.0, key)
    assert isinstance(line, bytes) and json.loads(line)["idempotency_key"] == key


async def test_every_http_target_gets_the_idempotency_header_which_a_target_header_cannot_replace() -> None:
    got: list[tuple[str, str | None]] = []
    transport = httpx.MockTransport(lambda r: (got.append((r.url.host, r.headers.get(IDEMPOTENCY_HEADER))),
                                               httpx.Response(200))[1])
    targets = [DeliveryTarget.model_validate(t) for t in (
        {"name": "hook", "type": "webhook", "url": "http://hook.test/h", "headers": {"idempotency-key": "mine"}},
        {"name": "am", "type": "alertmanager", "url": "http://am.test"},
        {"name": "chat", "type": "slack", "url": "http://chat.test/s"})]
    async with httpx.AsyncClient(transport=transport) as client:
        for t in targets:
            await send(t, alert(), "firing", client=client, base_url=BASE, timeout=1, now=1.0,
                       idempotency_key=idempotency_key("a1b2c3/2", t.name))
    assert got == [(f"{t.name}.test", idempotency_key("a1b2c3/2", t.name)) for t in targets]


# -- failure reasons -----------------------------------------------------------------------------------------
async def test_an_http_failure_keeps_the_status_line_not_the_body() -> None:
    hook = DeliveryTarget.model_validate({"name": "hook", "type": "webhook", "url": "http://hook.test/h"})
    body = "<html>stack trace: password=hunter2 " + "x" * 5000
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503, text=body))) as client:
        with pytest.raises(HttpStatusError) as err:
            await send(hook, alert(), "firing", client=client, base_url=BASE, timeout=1, now=1.0)
    failure = classify(err.value)
    assert failure.reason == "HttpStatusError: hook: HTTP 503 Service Unavailable" and not failure.permanent


def test_a_stored_reason_is_short_and_names_no_url_path() -> None:
    error = httpx.ConnectError("connect to https://u:pw@hooks.slack.com/services/T0/B0/SECRET?x=1 failed: "
                               + "y" * 2000)
    reason = stored_error(classify(error).reason)
    assert reason.startswith("ConnectError: connect to https://hooks.slack.com/… failed")
    assert "SECRET" not in reason and "pw" not in reason
    assert len(reason) <= ERROR_MAX and "\n" not in reason


# -- regular expressions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", ["(a+)+$", "(a+)+", "(a*)*b", "(a|aa)+", "(.*a){2,}", "(x+x+)+y", "(a?)+",
                                     r"(\w+)\1", "(?P<t>team)(?P=t)", ".*.*.*.*x", "a*a*a*a*b",
                                     "x" * (PATTERN_MAX + 1)])
def test_regexes_that_can_backtrack_catastrophically_are_refused_with_a_reason(pattern: str) -> None:
    why = regex_problem(pattern)
    assert why is not None
    with pytest.raises(ValidationError, match="regular expression refused") as err:
        Matcher.model_validate({"name": "scope", "op": "=~", "value": pattern})
    assert why in str(err.value)
    with pytest.raises(ValidationError, match="match_re.scope"):
        Route.model_validate({"match_re": {"scope": pattern}})
    Matcher.model_validate({"name": "scope", "op": "=", "value": pattern})  # not a regex: fine


@pytest.mark.parametrize(("pattern", "value", "hit"), [
    ("team:.*", "team:billing", True), ("team:(eu|us)-[a-z0-9]+", "team:eu-42", True),
    ("team:(eu|us)-[a-z0-9]+", "team:asia-1", False), (r"(\d+\.){3}\d+", "10.0.0.1", True),
    ("(foo|bar)+", "foobarfoo", True), ("[a-z]+-[a-z]+-[0-9]+-.*", "a-b-1-anything", True),
    (".*foo.*bar.*", "xfooybarz", True), ("team:a|team:b", "team:b", True), ("(?i)TEAM:.*", "team:x", True)])
def test_ordinary_regexes_still_match(pattern: str, value: str, hit: bool) -> None:
    assert regex_problem(pattern) is None
    assert Matcher.model_validate({"name": "scope", "op": "=~", "value": pattern}).matches({"scope": value}) is hit
    assert Matcher.model_validate({"name": "scope", "op": "!~", "value": pattern}).matches({"scope": value}) is not hit
    assert Route.model_validate({"match_re": {"scope": pattern}}).matches({"scope": value}) is hit


def test_a_value_longer_than_the_bound_matches_no_regex() -> None:
    long = "team:" + "a" * SUBJECT_MAX
    for op in ("=~", "!~"):
        assert not Matcher.model_validate({"name": "scope", "op": op, "value": "team:.*"}).matches({"scope": long})
    assert not regex_fullmatch("team:.*", long)
    assert Matcher.model_validate({"name": "scope", "op": "=", "value": long}).matches({"scope": long})


def test_a_stored_matcher_with_a_refused_regex_is_kept_and_silences_nothing() -> None:
    stored = Matcher.model_validate({"name": "scope", "op": "=~", "value": "(a+)+$"}, context={"stored": True})
    assert stored.refused is not None and "exponential" in stored.refused
    labels = {"scope": "aaaa"}
    assert not silenced_by([stored], labels)
    negated = Matcher.model_validate({"name": "scope", "op": "!~", "value": "(a+)+$"}, context={"stored": True})
    assert not silenced_by([negated], {"scope": "b"})


def test_a_refused_regex_takes_no_time_to_refuse() -> None:
    t = time.perf_counter()
    for pattern in ("(a+)+$", ".*" * 100, "(" * 50 + "a" + ")*" * 50):
        assert regex_problem(pattern) is not None
    assert time.perf_counter() - t < 1.0


def test_a_silence_stored_before_the_regex_check_is_still_listed(engine: Engine) -> None:
    """GET /v1/silences reads stored matchers as stored: a pattern refused since is listed (and
    silences nothing), not a 500."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from alerts.history import AlertRepository
    from api.routers.silences import _silence_out
    from db.schema import SilenceRow
    from stream.clock import utcnow

    now = utcnow()
    with Session(engine) as s, s.begin():
        s.add(SilenceRow(id="old1", matchers=[{"name": "scope", "value": "(a+)+$", "op": "=~"}], starts_at=now,
                         ends_at=now + timedelta(hours=1), created_by="lead", comment="from before", created_at=now))
    (view,) = AlertRepository(engine).silences(now)
    out = _silence_out(view).model_dump()
    assert out["matchers"] == [{"name": "scope", "value": "(a+)+$", "op": "=~"}] and out["status"] == "active"
