"""Real notification peers for the alert tests: an HTTP webhook sink that can go down and come back
(services/webhook_sink.py), a real Prometheus Alertmanager process, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import shutil
import subprocess
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from services.broker import free_port
from services.webhook_sink import WebhookSink

__all__ = ["Alertmanager", "SmtpSink", "WebhookSink"]


class Alertmanager:
    """`prometheus-alertmanager` (Debian package, installed by `make test`), one receiver that drops."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError("prometheus-alertmanager is not installed: `make test` installs it (apt)")
        self.port = free_port()
        cfg = tmp / "alertmanager.yml"
        cfg.write_text("route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n")
        (tmp / "am-data").mkdir(exist_ok=True)
        self.log = open(tmp / "alertmanager.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.path={tmp / 'am-data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("Alertmanager did not become ready")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free port; `messages` are the parsed e-mails."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
