"""Payloads per target type, and sending them (I/O edge: httpx, smtplib, a log file).

`payload` is the alert as the notifier recorded it (the transition plus state, ack and escalation).
Everything in it comes from event data and may hold anything (`<!channel>`, `&`, line breaks,
U+2028, NUL, emoji, CJK), so each formatter escapes it for its medium:

- Slack-compatible: `&`, `<` and `>` as entities in every text (`<!channel>` pings nobody); the link
  to the alert is built here and stays a link.
- E-mail: the subject on one line (CR, LF, U+2028/U+2029 and other control characters folded into
  spaces; non-ASCII encoded by the email package); the plain-text body without control characters.
- Webhook, log file, Alertmanager: the raw values (JSON escapes them); Alertmanager label names made
  valid, as Alertmanager refuses a whole request over one bad name.

Every notification carries an idempotency key (`idempotency_key`: a hash of the outbox row's dedupe key
and the target, the same on every redelivery of that notification, by any notifier): the webhook body's
`idempotency_key` and the `Idempotency-Key` header of every HTTP target, the Alertmanager annotation
`idempotency_key` (an annotation: labels would split Alertmanager's grouping), the e-mail's Message-ID.

E-mail goes out as the target's `tls` says: STARTTLS or SMTPS with the certificate and host name
checked (`ssl.create_default_context`, or the target's `smtp_ca_file`), or in clear for a relay
without login (a target with a login and no TLS does not validate).

`send` raises on any failure; `classify` says whether trying again can help:

    DeliveryError
     ├── BuildError        the message could not be built from the alert: permanent
     ├── HttpStatusError   the target answered 300 or more: 5xx, 408, 425, 429 transient, others permanent
     └── TargetConfigError the target cannot be sent to as configured: permanent
    and what the transports raise: httpx transport errors and OSError transient, smtplib by reply code,
    a certificate that does not verify permanent (until the relay or smtp_ca_file is fixed)

A failure's reason names the exception and its message, never a response body (an HTTP status keeps
its status line only), with URLs cut to scheme and host (a Slack webhook's path is its secret); what
is stored of it (`stored_error`) is at most ERROR_MAX characters.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.header import Header
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from alerts.engine import texts_in
from alerts.routing import ALERTMANAGER_RESEND_S, DeliveryTarget, alert_labels
from stream.clock import rfc3339

WEBHOOK_VERSION = "1"
COLORS = {"critical": "#d62728", "warning": "#ff9f1a", "resolved": "#2ca02c"}
SUBJECT_MAX = 200
ERROR_MAX = 300  # characters of a failure stored as a notification's last_error
PHRASE_MAX = 100  # characters of an HTTP reason phrase kept
IDEMPOTENCY_HEADER = "Idempotency-Key"
TRANSIENT_HTTP = frozenset({408, 425, 429})
# 7-bit transport: non-ASCII bodies go out quoted-printable or base64, for relays without 8BITMIME
MAIL_POLICY = email.policy.default.clone(cte_type="7bit")

_CONTROLS_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_LINE_BREAK = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{0,15}://)(?:[^\s/@?#]*@)?([^\s/?#]*)(\S*)")
_NOT_HOST = re.compile(r"[^A-Za-z0-9.-]")


# -- escaping (pure) ------------------------------------------------------------------------------
def one_line(text: object, limit: int | None = None) -> str:
    """`text` on one line: each run of line breaks, tabs and control characters becomes one space.

    >>> one_line("team:a\\r\\nBcc: x\\u2028y\\x00z")
    'team:a Bcc: x y z'
    """
    s = _CONTROLS_RUN.sub(" ", str(text)).strip()
    return s if limit is None or len(s) <= limit else s[: limit - 1] + "…"


def text_block(text: object) -> str:
    """Multi-line text: line breaks as `\\n` (CR LF, CR, U+2028...), other control characters dropped.

    >>> text_block("a\\r\\nb\\u2029c\\x00d")
    'a\\nb\\ncd'
    """
    return _CONTROL.sub("", _LINE_BREAK.sub("\n", str(text)))


def slack_escape(text: str) -> str:
    """Slack's three entities (api.slack.com "Escaping text"): `<!channel>` is then shown, not run.

    >>> slack_escape("<!channel> & <@U123>")
    '&lt;!channel&gt; &amp; &lt;@U123&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def am_label_name(name: str) -> str:
    """A valid Alertmanager label name, as Prometheus makes them: other characters become `_`."""
    n = _LABEL_NAME.sub("_", name)
    return f"_{n}" if not n or n[0].isdigit() else n


def redact_urls(text: str) -> str:
    """URLs cut to scheme and host: a path or query may be a secret (a Slack webhook, a token).

    >>> redact_urls("POST https://user:pw@hooks.slack.com/services/T/B/X?t=1 failed")
    'POST https://hooks.slack.com/… failed'
    """
    return _URL.sub(lambda m: m[1] + m[2] + ("/…" if m[3] else ""), text)


def idempotency_key(dedupe_key: str, target: str) -> str:
    """The id of one notification to one target, the same on each of its redeliveries (by any notifier):
    the outbox's unique (dedupe key, target), hashed.

    >>> idempotency_key("a1/3", "hook") == idempotency_key("a1/3", "hook") != idempotency_key("a1/3", "am")
    True
    """
    return hashlib.sha256(f"{dedupe_key}\n{target}".encode()).hexdigest()[:32]


# -- payloads (pure) ------------------------------------------------------------------------------
def status_of(alert: dict[str, Any]) -> str:
    return "resolved" if alert.get("state") == "resolved" else "firing"


def link(alert: dict[str, Any], base_url: str) -> str:
    return f"{base_url}/v1/alerts/{quote(str(alert['alert_id']), safe='')}"


def _fmt(alert: dict[str, Any], v: Any) -> str:
    if v is None:
        return "n/a"
    if alert.get("kpi", "").endswith("_rate") or alert.get("kpi") in ("service_level", "csat"):
        return f"{v:.1%}"
    return f"{v:.4g}"


def fmt_value(alert: dict[str, Any]) -> str:
    """The value that made the alert fire (or change), and for a firing alert the engine's latest
    reading beside it when that differs: a repeat a quarter of an hour later says what is true now.

    >>> fmt_value({"kpi": "abandonment_rate", "state": "firing", "value": 0.106, "live_value": 0.265})
    '26.5% now (10.6% when it fired)'
    """
    fired, live = _fmt(alert, alert.get("value")), alert.get("live_value")
    if status_of(alert) == "resolved" or live is None or _fmt(alert, live) == fired:
        return fired
    return f"{_fmt(alert, live)} now ({fired} when it fired)"


def localized(alert: dict[str, Any], lang: str | None) -> dict[str, Any]:
    """The alert with its summary and intervention in `lang` where the rule has them."""
    if not lang:
        return alert
    summary, intervention = texts_in(alert, lang)
    return {**alert, "summary": summary, "intervention": intervention}


def webhook_body(alert: dict[str, Any], reason: str, base_url: str, key: str | None = None) -> dict[str, Any]:
    """Generic JSON webhook: one alert per request, stable field names (documented in docs/api.md);
    `idempotency_key` the same on each redelivery of this notification."""
    body: dict[str, Any] = {"version": WEBHOOK_VERSION, "status": status_of(alert), "reason": reason}
    if key is not None:
        body["idempotency_key"] = key
    body["alert"] = {**alert, "labels": alert_labels(alert), "url": link(alert, base_url)}
    return body


def alertmanager_body(alert: dict[str, Any], base_url: str, resend_s: float | None, now: float,
                      key: str | None = None) -> list[dict[str, Any]]:
    """Alertmanager API v2 `POST /api/v2/alerts`. A firing alert ends 3 re-send intervals from now
    (it is re-sent before that while it fires); a resolved one ends at its resolution. The idempotency
    key is an annotation: Alertmanager identifies and groups alerts by their labels only."""
    resolved = status_of(alert) == "resolved"
    ends = alert["ts"] if resolved else now + 3 * (resend_s or ALERTMANAGER_RESEND_S)
    annotations = {"summary": str(alert.get("summary") or ""), "description": str(alert.get("intervention") or ""),
                   "value": fmt_value(alert), "threshold": str(alert.get("threshold"))}
    if alert.get("end_reason"):
        annotations["end_reason"] = str(alert["end_reason"])
    if alert.get("runbook_url"):
        annotations["runbook_url"] = str(alert["runbook_url"])
    if key is not None:
        annotations["idempotency_key"] = key
    labels = {am_label_name(k): v for k, v in alert_labels(alert).items()}
    return [{"labels": labels, "annotations": annotations,
             "startsAt": rfc3339(alert.get("started_at") or alert["ts"]), "endsAt": rfc3339(ends),
             "generatorURL": link(alert, base_url)}]


def headline(alert: dict[str, Any], reason: str) -> str:
    """`[SEVERITY] rule on scope`, on one line (not escaped: each medium escapes it)."""
    sev = "RESOLVED" if status_of(alert) == "resolved" else one_line(alert.get("severity") or "").upper()
    return f"[{sev}] {one_line(alert['rule_id'])} on {one_line(alert['scope'])}"


def slack_body(alert: dict[str, Any], reason: str, base_url: str) -> dict[str, Any]:
    """Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): text plus one attachment."""
    status = status_of(alert)
    sev = alert.get("severity") or ""
    head = headline(alert, reason)
    if reason == "escalation":
        head = f"ESCALATED (not acknowledged) {head}"
    elif reason == "repeat":
        head = f"still firing: {head}"
    head = slack_escape(head)
    text = f"{head}: {slack_escape(text_block(alert.get('summary') or ''))}"
    if alert.get("end_reason"):
        text += f" ({slack_escape(one_line(alert['end_reason']))})"
    fields = [{"title": "Value", "value": fmt_value(alert), "short": True},
              {"title": "Window", "value": slack_escape(one_line(alert.get("window", ""))), "short": True}]
    if alert.get("intervention") and status != "resolved":
        fields.append({"title": "What to do", "value": slack_escape(text_block(alert["intervention"])),
                       "short": False})
    color = COLORS.get("resolved" if status == "resolved" else sev, COLORS["warning"])
    return {"text": text, "attachments": [{"color": color, "title": head, "title_link": link(alert, base_url),
                                           "fields": fields}]}


def email_message(alert: dict[str, Any], reason: str, base_url: str, target: DeliveryTarget,
                  key: str | None = None) -> EmailMessage:
    status = status_of(alert)
    msg = EmailMessage(policy=MAIL_POLICY)
    if key is not None:  # the same on a redelivery: mail systems drop the second copy
        domain = _NOT_HOST.sub("", parseaddr(target.from_addr or "")[1].rpartition("@")[2]) or "sqm.invalid"
        msg["Message-ID"] = f"<{key}.sqm@{domain}>"
    subject = headline(alert, reason)
    subject = one_line(f"[ESCALATED] {subject}" if reason == "escalation" else subject, SUBJECT_MAX)
    if subject.isascii():
        msg["Subject"] = subject
    else:  # encoded words made here: Python 3.11's folding drops the space between two of them
        msg.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode())
    msg["From"] = target.from_addr or ""
    msg["To"] = ", ".join(target.to)
    ended = [one_line(alert["end_reason"])] if alert.get("end_reason") else []
    lines = [text_block(alert.get("summary") or ""), *ended, "",
             f"Value: {fmt_value(alert)} (threshold {one_line(alert.get('op', ''))} {alert.get('threshold')}) "
             f"over {one_line(alert.get('window'))}, {alert.get('count')} samples",
             f"Scope: {one_line(alert['scope'])}", f"Rule: {one_line(alert['rule_id'])}"]
    if alert.get("intervention") and status != "resolved":
        lines += ["", f"What to do: {text_block(alert['intervention'])}"]
    if alert.get("runbook_url"):
        lines.append(f"Runbook: {one_line(alert['runbook_url'])}")
    lines += ["", f"Acknowledge: POST {link(alert, base_url)}/ack", f"Details: {link(alert, base_url)}"]
    msg.set_content("\n".join(lines))
    return msg


# -- failures ---------------------------------------------------------------------------------------
class DeliveryError(Exception):
    """A notification that did not go out."""


class BuildError(DeliveryError):
    """The message could not be built from the alert: sending it again would fail the same way."""


class HttpStatusError(DeliveryError):
    """The target's answer: its status line only (`HTTP 503 Service Unavailable`), never the body."""

    def __init__(self, target: str, status: int, phrase: str = "") -> None:
        line = f"HTTP {status} {one_line(phrase, PHRASE_MAX)}".rstrip()
        super().__init__(f"{target}: {line}")
        self.status = status


class TargetConfigError(DeliveryError):
    """The target cannot be sent to as it is configured (e.g. a login without TLS): permanent."""


@dataclass(frozen=True, slots=True)
class Failure:
    permanent: bool  # no retry can help: park the notification at once
    reason: str  # one line, at most 500 characters, URLs cut to their host, safe to log (store: stored_error)


def classify(error: BaseException) -> Failure:
    """Transient (retry with backoff) or permanent (park) failure, with its reason.

    >>> classify(HttpStatusError("hook", 410, "Gone"))
    Failure(permanent=True, reason='HttpStatusError: hook: HTTP 410 Gone')
    >>> classify(smtplib.SMTPDataError(451, b"try later")).permanent
    False
    """
    return Failure(_permanent(error), one_line(redact_urls(one_line(f"{type(error).__name__}: {error}")), 500))


def stored_error(reason: str) -> str:
    """A failure's reason as stored in a notification's `last_error`: one line of at most ERROR_MAX."""
    return one_line(reason, ERROR_MAX)


def _permanent(error: BaseException) -> bool:
    if isinstance(error, (BuildError, TargetConfigError)):
        return True
    if isinstance(error, ssl.SSLCertVerificationError):
        return True  # the relay's certificate does not verify: a configuration to fix, then retry the parked
    if isinstance(error, HttpStatusError):
        return not (error.status >= 500 or error.status in TRANSIENT_HTTP)
    if isinstance(error, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        return True  # a URL or request this client can never send
    if isinstance(error, httpx.TransportError):
        return False  # connection refused or reset, timeouts, a proxy down
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return True  # e.g. STARTTLS configured, the relay has none
    if isinstance(error, OSError):
        return False  # network errors, timeouts, a disconnected relay (smtplib's errors are OSErrors)
    # errors of the message itself, e.g. a header the relay's encoding cannot carry
    return isinstance(error, (ValueError, TypeError, LookupError, AttributeError))


# -- sending ------------------------------------------------------------------------------------------
def smtp_tls_context(target: DeliveryTarget) -> ssl.SSLContext:
    """Certificate and host name checked: against the system's CAs, or only those of `smtp_ca_file`."""
    return ssl.create_default_context(cafile=target.smtp_ca_file)


def _smtp_send(target: DeliveryTarget, msg: EmailMessage, timeout: float) -> None:
    assert target.smtp_host
    tls = target.tls
    if target.smtp_user and tls == "none":  # refused when the target is validated; never send a password in clear
        raise TargetConfigError(f"{target.name}: a login without TLS")
    if tls == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(target.smtp_host, target.smtp_port, timeout=timeout,
                                              context=smtp_tls_context(target))
    else:
        smtp = smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=timeout)
    with smtp:
        if tls == "starttls":
            smtp.starttls(context=smtp_tls_context(target))  # raises unless the relay's certificate verifies
        if target.smtp_user:
            smtp.login(target.smtp_user, target.smtp_password or "")
        smtp.send_message(msg)


def render(target: DeliveryTarget, alert: dict[str, Any], reason: str, base_url: str, now: float,
           key: str | None = None) -> bytes | EmailMessage:
    """The message for `target`: a JSON body (a log line for `log`) or an e-mail, in the target's
    language, carrying the idempotency key `key`. Raises BuildError."""
    try:
        alert = localized(alert, target.language)
        if target.type == "email":
            msg = email_message(alert, reason, base_url, target, key)
            msg.as_bytes()  # serialise once: a message that cannot be is a build error, not a send error
            return msg
        if target.type == "log":
            line = {"at": rfc3339(now), "reason": reason, **webhook_body(alert, reason, base_url, key)}
            return orjson.dumps(line) + b"\n"
        if target.type == "alertmanager":
            return orjson.dumps(alertmanager_body(alert, base_url, target.resend_s, now, key))
        if target.type == "slack":
            return orjson.dumps(slack_body(alert, reason, base_url))
        return orjson.dumps(webhook_body(alert, reason, base_url, key))
    except Exception as exc:
        raise BuildError(f"{type(exc).__name__}: {exc}") from exc


async def send(target: DeliveryTarget, alert: dict[str, Any], reason: str, *, client: httpx.AsyncClient, base_url: str,
               timeout: float, now: float, idempotency_key: str | None = None) -> None:
    """Deliver one notification; raises on failure (HTTP status >= 300 included). `idempotency_key`:
    the same for each redelivery of this notification (`idempotency_key()`), sent with it."""
    message = render(target, alert, reason, base_url, now, idempotency_key)
    if isinstance(message, EmailMessage):
        await asyncio.to_thread(_smtp_send, target, message, timeout)
        return
    if target.type == "log":
        assert target.path
        await asyncio.to_thread(_append, Path(target.path), message)
        return
    assert target.url
    url = target.url.rstrip("/") + "/api/v2/alerts" if target.type == "alertmanager" else target.url
    headers = httpx.Headers({"content-type": "application/json", **target.headers})
    if idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    r = await client.post(url, content=message, timeout=timeout, headers=headers)
    if r.status_code >= 300:
        raise HttpStatusError(target.name, r.status_code, r.reason_phrase)  # not the body: it may hold anything


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(line)


def backoff(attempts: int, cap: float) -> timedelta:
    """1 s, 2 s, 4 s ... capped: a target that comes back gets its backlog within `cap` seconds."""
    return timedelta(seconds=min(cap, 2.0 ** max(0, attempts - 1)))
