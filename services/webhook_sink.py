"""A webhook receiver that keeps and prints what it is sent: try a notify file without a real target.

    python -m services.webhook_sink --port 9099      # then point a webhook/slack target at it

Each POST body is printed as one JSON line with the path. The test suite and the benchmark use the
same class as a real HTTP peer (`stop()` closes the port: the target is down; `start()` reopens it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import typer

from services.broker import free_port


class WebhookSink:
    """Records every POST body by path. `stop()` closes the port (the target is down), `start()` reopens it."""

    def __init__(self, port: int | None = None, *, echo: bool = False) -> None:
        self.port = port or free_port()
        self.echo = echo
        self.received: list[tuple[str, Any]] = []
        self.arrived: list[float] = []  # time.time() of each body in `received`
        self._server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebhookSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with sink.lock:
                    sink.received.append((self.path, json.loads(body)))
                    sink.arrived.append(time.time())
                if sink.echo:
                    print(json.dumps({"path": self.path, "body": json.loads(body)}), file=sys.stdout, flush=True)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [b for p, b in self.received if p == path]


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def serve(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 9099) -> None:
    sink = WebhookSink(port, echo=True).start()
    typer.echo(f"listening on {sink.url}; Ctrl-C stops", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    app()
