"""Payloads per medium with hostile values from event data, and the classification of delivery
errors (pure; the network boundary is httpx.MockTransport)."""

from __future__ import annotations

import doctest
import json
import smtplib
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest

from alerts import delivery
from alerts.delivery import (
    BuildError,
    HttpStatusError,
    alertmanager_body,
    classify,
    email_message,
    send,
    slack_body,
    webhook_body,
)
from alerts.routing import DeliveryTarget
from tests.support.alert_data import alert

HOSTILE = "<!channel> & <@U123> *bold* `x`\r\nBcc: evil@example.com\u2028next\u2029para\x00nul 🚨 中文客服"
BASE = "http://sqm.test"
MAIL = DeliveryTarget.model_validate({"name": "mail", "type": "email", "smtp_host": "127.0.0.1",
                                      "from": "sqm@example.com", "to": ["leads@example.com"]})



def hostile() -> dict[str, Any]:
    return alert(scope=f"team:{HOSTILE}", rule_id=f"rule {HOSTILE}", summary=f"summary {HOSTILE}",
                 intervention=f"do {HOSTILE}", window=f"15m{HOSTILE}", labels={"team": HOSTILE})


def test_the_doctests_of_the_escaping_functions() -> None:
    assert doctest.testmod(delivery).failed == 0


# -- Slack-compatible ----------------------------------------------------------------------------------
def test_slack_escapes_every_text_from_event_data() -> None:
    body = slack_body(hostile(), "escalation", BASE)
    att = body["attachments"][0]
    texts = [body["text"], att["title"], *(f["value"] for f in att["fields"])]
    for t in texts:
        assert "<" not in t and ">" not in t, t  # no <!channel>, <@U123> or <url|label> from the data
        assert "\x00" not in t and "\u2028" not in t and "\r" not in t
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in body["text"]
    assert "&amp;" in att["title"] and "🚨 中文客服" in body["text"] and "🚨 中文客服" in att["title"]
    assert body["text"].startswith("ESCALATED (not acknowledged) [CRITICAL] rule &lt;!channel&gt;")
    assert "\n" not in att["title"], "the headline stays on one line"
    assert att["title_link"] == f"{BASE}/v1/alerts/a1b2c3", "the link built here stays a link"


def test_slack_link_quotes_a_hostile_alert_id() -> None:
    body = slack_body(alert(alert_id="x|<!channel>/../y"), "firing", BASE)
    assert body["attachments"][0]["title_link"] == f"{BASE}/v1/alerts/x%7C%3C%21channel%3E%2F..%2Fy"


# -- e-mail --------------------------------------------------------------------------------------------
def test_email_subject_is_one_header_that_keeps_unicode_and_cannot_be_injected() -> None:
    msg = email_message(hostile(), "escalation", BASE, MAIL)
    raw = msg.as_bytes()
    head, _, _ = raw.partition(b"\n\n")
    assert head.isascii(), "non-ASCII headers are encoded (RFC 2047)"
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_all("Bcc") is None and len(parsed.get_all("Subject")) == 1
    subject = str(parsed["Subject"])
    assert subject.startswith("[ESCALATED] [CRITICAL] rule <!channel> & <@U123>")
    assert "🚨 中文客服" in subject and len(subject) <= delivery.SUBJECT_MAX
    assert not any(c in subject for c in "\r\n\x00\u2028\u2029")
    assert parsed["To"] == "leads@example.com"


@pytest.mark.parametrize("scope", ["team:a\r\nBcc: x@y", "team:a\u2028b", "team:a\x00b", "team:a\nb\rc",
                                   "team:\x1b[31m", "team:" + "長" * 3000, "team:🙂" * 400])
def test_email_builds_and_serialises_for_any_scope(scope: str) -> None:
    raw = email_message(alert(scope=scope), "firing", BASE, MAIL).as_bytes()
    assert max(len(line) for line in raw.split(b"\n")) <= 998, "SMTP's line limit"
    parsed = message_from_bytes(raw, policy=policy.default)
    assert "\n" not in str(parsed["Subject"]) and "\x00" not in str(parsed["Subject"])


def test_email_body_keeps_text_and_drops_control_characters() -> None:
    parsed = message_from_bytes(email_message(hostile(), "firing", BASE, MAIL).as_bytes(), policy=policy.default)
    body = parsed.get_content()
    assert "\x00" not in body and "\u2028" not in body
    assert "summary <!channel> & <@U123> *bold* `x`\nBcc: evil@example.com\nnext\npara" in body
    assert "🚨 中文客服" in body and "What to do: do <!channel>" in body
    assert "Details: http://sqm.test/v1/alerts/a1b2c3" in body


def test_plain_ascii_email_stays_readable_7bit() -> None:
    msg = email_message(alert(), "firing", BASE, MAIL)
    assert msg["Subject"] == "[CRITICAL] sl-low on team:billing"
    assert msg["Content-Transfer-Encoding"] == "7bit" and "Open the overflow queue." in msg.get_payload()


# -- webhook, log, Alertmanager: raw values ----------------------------------------------------------------
def test_webhook_json_carries_the_raw_values() -> None:
    a = hostile()
    body = json.loads(json.dumps(webhook_body(a, "firing", BASE)))
    assert body["alert"]["scope"] == a["scope"] and body["alert"]["summary"] == a["summary"]
    assert body["alert"]["labels"]["team"] == HOSTILE


def test_alertmanager_labels_carry_raw_values_under_valid_names() -> None:
    a = hostile()
    a["labels"] = {"team-name": HOSTILE, "1st": "x", "ok_name": "y", "": "z"}
    [am] = alertmanager_body(a, BASE, None, 1_800_000_100.0)
    assert am["labels"]["team_name"] == HOSTILE and am["labels"]["_1st"] == "x" and am["labels"]["ok_name"] == "y"
    assert am["labels"]["_"] == "z" and am["labels"]["scope"] == a["scope"]
    assert all(k.replace("_", "a").isalnum() and not k[0].isdigit() for k in am["labels"])
    assert am["annotations"]["summary"] == a["summary"]


# -- errors -------------------------------------------------------------------------------------------------
REQ = httpx.Request("POST", "http://hook.test")


@pytest.mark.parametrize(("error", "permanent"), [
    (HttpStatusError("t", 500, ""), False), (HttpStatusError("t", 502, ""), False),
    (HttpStatusError("t", 503, ""), False), (HttpStatusError("t", 408, ""), False),
    (HttpStatusError("t", 425, ""), False), (HttpStatusError("t", 429, ""), False),
    (HttpStatusError("t", 400, ""), True), (HttpStatusError("t", 401, ""), True),
    (HttpStatusError("t", 404, ""), True), (HttpStatusError("t", 410, ""), True),
    (HttpStatusError("t", 413, ""), True), (HttpStatusError("t", 422, ""), True),
    (HttpStatusError("t", 301, ""), True),
    (httpx.ConnectError("refused", request=REQ), False), (httpx.ReadTimeout("slow", request=REQ), False),
    (httpx.RemoteProtocolError("reset", request=REQ), False),
    (httpx.UnsupportedProtocol("ftp://", request=REQ), True), (httpx.InvalidURL("bad"), True),
    (smtplib.SMTPDataError(451, b"try later"), False), (smtplib.SMTPSenderRefused(421, b"busy", "a@b"), False),
    (smtplib.SMTPDataError(550, b"rejected"), True), (smtplib.SMTPDataError(554, b"spam"), True),
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), True),
    (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), True),
    (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (452, b"full")}), False),
    (smtplib.SMTPServerDisconnected("gone"), False), (smtplib.SMTPNotSupportedError("no STARTTLS"), True),
    (ConnectionRefusedError(111, "refused"), False), (TimeoutError("timed out"), False),
    (BuildError("ValueError: bad"), True), (UnicodeEncodeError("ascii", "é", 0, 1, "x"), True),
    (RuntimeError("something else"), False),
])
def test_classification(error: BaseException, permanent: bool) -> None:
    f = classify(error)
    assert f.permanent is permanent
    assert f.reason.startswith(type(error).__name__) and "\n" not in f.reason and len(f.reason) <= 500


def test_a_reason_is_safe_to_store() -> None:
    f = classify(HttpStatusError("hook", 400, "bad\x00request\r\n" + "x" * 1000))
    assert "\x00" not in f.reason and "\n" not in f.reason and "bad request xxx" in f.reason
    assert len(classify(RuntimeError("y" * 1000)).reason) == 500


async def test_send_raises_what_classify_understands() -> None:
    hook = DeliveryTarget.model_validate({"name": "hook", "type": "webhook", "url": "http://hook.test/h"})
    transport = httpx.MockTransport(lambda req: httpx.Response(410, text="gone"))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(HttpStatusError) as err:
            await send(hook, alert(), "firing", client=client, base_url=BASE, timeout=1, now=1.0)
        assert classify(err.value).permanent and str(err.value) == "hook: HTTP 410 Gone"  # no body kept
        # a value the formatter cannot format: the message cannot be built
        chat = DeliveryTarget.model_validate({"name": "chat", "type": "slack", "url": "http://chat.test/s"})
        with pytest.raises(BuildError) as built:
            await send(chat, alert(value="n/a"), "firing", client=client, base_url=BASE, timeout=1, now=1.0)
        assert classify(built.value).permanent
