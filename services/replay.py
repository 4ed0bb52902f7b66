"""Replay a JSON-lines file of contract events into the topics: `python -m services.replay FILE`.

Lines are sent as they are (bad lines too: the workers dead-letter them, as they would from any
producer). A rich progress bar shows lines and rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.config import Settings
from services.producer import make_producer, route

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON-lines file, one event per line")],
    rate: Annotated[float, typer.Option(help="events per second; 0 = as fast as possible")] = 0.0,
) -> None:
    settings = Settings()
    lines = file.read_bytes().splitlines()
    producer = make_producer(settings)
    sent = bad = 0
    import time

    t0 = time.monotonic()
    with Progress(TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn()) as progress:
        task = progress.add_task("replay", total=len(lines), rate="")
        for i, line in enumerate(lines):
            if not line.strip():
                progress.advance(task)
                continue
            try:
                obj = orjson.loads(line)
                kind, key = route(obj) if isinstance(obj, dict) else ("tickets", None)
            except orjson.JSONDecodeError:
                kind, key, bad = "tickets", None, bad + 1
            producer.send(settings.topic(kind), key=key, value=line)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            if i % 500 == 0:
                progress.update(task, rate=f"{sent / max(time.monotonic() - t0, 1e-6):,.0f}/s")
            progress.advance(task)
        producer.flush()
    producer.close()
    typer.echo(f"sent {sent} lines ({bad} not JSON, sent to be dead-lettered) to {settings.topic_prefix}*")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
