"""Payloads per target type, and sending them (I/O edge: httpx, smtplib, a log file).

`payload` is the alert as the notifier recorded it (the transition plus state, ack and escalation).
The formatters are pure; `send` raises on any failure so that the outbox retries.
"""

from __future__ import annotations

import asyncio
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson

from alerts.routing import ALERTMANAGER_RESEND_S, Target, alert_labels
from stream.clock import rfc3339

WEBHOOK_VERSION = "1"
COLORS = {"critical": "#d62728", "warning": "#ff9f1a", "resolved": "#2ca02c"}


def status_of(alert: dict[str, Any]) -> str:
    return "resolved" if alert.get("state") == "resolved" else "firing"


def link(alert: dict[str, Any], base_url: str) -> str:
    return f"{base_url}/v1/alerts/{alert['alert_id']}"


def fmt_value(alert: dict[str, Any]) -> str:
    v = alert.get("value")
    if v is None:
        return "n/a"
    if alert.get("kpi", "").endswith("_rate") or alert.get("kpi") in ("service_level", "csat"):
        return f"{v:.1%}"
    return f"{v:.4g}"


def webhook_body(alert: dict[str, Any], reason: str, base_url: str) -> dict[str, Any]:
    """Generic JSON webhook: one alert per request, stable field names (documented in docs/api.md)."""
    return {"version": WEBHOOK_VERSION, "status": status_of(alert), "reason": reason,
            "alert": {**alert, "labels": alert_labels(alert), "url": link(alert, base_url)}}


def alertmanager_body(alert: dict[str, Any], base_url: str, resend_s: float | None, now: float) -> list[dict[str, Any]]:
    """Alertmanager API v2 `POST /api/v2/alerts`. A firing alert ends 3 re-send intervals from now
    (it is re-sent before that while it fires); a resolved one ends at its resolution."""
    resolved = status_of(alert) == "resolved"
    ends = alert["ts"] if resolved else now + 3 * (resend_s or ALERTMANAGER_RESEND_S)
    annotations = {"summary": alert.get("summary") or "", "description": alert.get("intervention") or "",
                   "value": fmt_value(alert), "threshold": str(alert.get("threshold"))}
    if alert.get("runbook_url"):
        annotations["runbook_url"] = alert["runbook_url"]
    return [{"labels": alert_labels(alert), "annotations": annotations,
             "startsAt": rfc3339(alert.get("started_at") or alert["ts"]), "endsAt": rfc3339(ends),
             "generatorURL": link(alert, base_url)}]


def slack_body(alert: dict[str, Any], reason: str, base_url: str) -> dict[str, Any]:
    """Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): text plus one attachment."""
    status = status_of(alert)
    sev = alert.get("severity") or ""
    head = f"[{'RESOLVED' if status == 'resolved' else sev.upper()}] {alert['rule_id']} on {alert['scope']}"
    if reason == "escalation":
        head = f"ESCALATED (not acknowledged) {head}"
    elif reason == "repeat":
        head = f"still firing: {head}"
    text = f"{head}: {alert.get('summary') or ''}"
    fields = [{"title": "Value", "value": fmt_value(alert), "short": True},
              {"title": "Window", "value": alert.get("window", ""), "short": True}]
    if alert.get("intervention") and status != "resolved":
        fields.append({"title": "What to do", "value": alert["intervention"], "short": False})
    return {"text": text, "attachments": [{"color": COLORS["resolved" if status == "resolved" else sev or "warning"],
                                           "title": head, "title_link": link(alert, base_url),
                                           "fields": fields}]}


def email_message(alert: dict[str, Any], reason: str, base_url: str, target: Target) -> EmailMessage:
    status = status_of(alert)
    sev = (alert.get("severity") or "").upper()
    msg = EmailMessage()
    prefix = "[RESOLVED]" if status == "resolved" else f"[{sev}]"
    if reason == "escalation":
        prefix = f"[ESCALATED] {prefix}"
    msg["Subject"] = f"{prefix} {alert['rule_id']} on {alert['scope']}"
    msg["From"] = target.from_addr or ""
    msg["To"] = ", ".join(target.to)
    lines = [alert.get("summary") or "", "",
             f"Value: {fmt_value(alert)} (threshold {alert.get('op', '')} {alert.get('threshold')}) "
             f"over {alert.get('window')}, {alert.get('count')} samples",
             f"Scope: {alert['scope']}", f"Rule: {alert['rule_id']}"]
    if alert.get("intervention") and status != "resolved":
        lines += ["", f"What to do: {alert['intervention']}"]
    if alert.get("runbook_url"):
        lines.append(f"Runbook: {alert['runbook_url']}")
    lines += ["", f"Acknowledge: POST {link(alert, base_url)}/ack", f"Details: {link(alert, base_url)}"]
    msg.set_content("\n".join(lines))
    return msg


def _smtp_send(target: Target, msg: EmailMessage, timeout: float) -> None:
    assert target.smtp_host
    with smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=timeout) as smtp:
        if target.smtp_starttls:
            smtp.starttls()
        if target.smtp_user:
            smtp.login(target.smtp_user, target.smtp_password or "")
        smtp.send_message(msg)


async def send(target: Target, alert: dict[str, Any], reason: str, *, client: httpx.AsyncClient, base_url: str,
               timeout: float, now: float) -> None:
    """Deliver one notification; raises on failure (HTTP status >= 300 included)."""
    if target.type == "log":
        assert target.path
        line = orjson.dumps({"at": rfc3339(now), "reason": reason, **webhook_body(alert, reason, base_url)}) + b"\n"
        await asyncio.to_thread(_append, Path(target.path), line)
        return
    if target.type == "email":
        await asyncio.to_thread(_smtp_send, target, email_message(alert, reason, base_url, target), timeout)
        return
    assert target.url
    if target.type == "alertmanager":
        url = target.url.rstrip("/") + "/api/v2/alerts"
        body: Any = alertmanager_body(alert, base_url, target.resend_s, now)
    elif target.type == "slack":
        url, body = target.url, slack_body(alert, reason, base_url)
    else:
        url, body = target.url, webhook_body(alert, reason, base_url)
    r = await client.post(url, content=orjson.dumps(body), timeout=timeout,
                          headers={"content-type": "application/json", **target.headers})
    if r.status_code >= 300:
        raise RuntimeError(f"{target.name}: HTTP {r.status_code}: {r.text[:200]}")


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(line)


def backoff(attempts: int, cap: float) -> timedelta:
    """1 s, 2 s, 4 s ... capped: a target that comes back gets its backlog within `cap` seconds."""
    return timedelta(seconds=min(cap, 2.0 ** max(0, attempts - 1)))
