"""Backfill the KPI history from a file of past events: `python -m services.backfill FILE [--name N]`.

Folds the file (JSON lines of contract events, any age) through the workers' folds into the history
(history/backfill.py), so that comparisons with yesterday and last week work from the first day.
Writing the same file again (same --name, default the file's name) replaces what it wrote before.
Events from the first minute the live history writer recorded on (or, before it has written any, of
the last 24 h) are skipped: the live path counts those. `--until` (RFC 3339; UTC without an offset)
overrides.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from db.engine import connect
from history.backfill import fold_lines
from history.series import minute_rows_to_keep
from history.store import HistoryStore
from services.config import Settings
from stream.clock import aware
from stream.windows import LONGEST

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def backfill(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON-lines file of contract events")],
    name: Annotated[str | None, typer.Option(help="source name; default: the file name")] = None,
    until: Annotated[datetime | None, typer.Option(help="skip events at or after this time (RFC 3339); "
                                                  "default: the first minute of the live history")] = None,
) -> None:
    settings = Settings()
    store = HistoryStore(connect(settings.database_url))
    now = time.time()
    # events the live path counts are the history writer's: from its first minute on, or, before it
    # ever wrote one, the last 24 h (the state topic holds those and the writer will write them)
    live_since = store.live_since()
    stop = aware(until).timestamp() if until else (live_since if live_since is not None else now - LONGEST)
    size = file.stat().st_size

    def lines(progress: Progress, task: TaskID) -> Iterator[bytes]:
        with file.open("rb") as fh:
            for line in fh:
                progress.advance(task, len(line))
                yield line

    with Progress(TextColumn("[bold]backfill"), BarColumn(), DownloadColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("read", total=size)
        rows, stats = fold_lines(lines(progress, task), now=now, cfg=settings.kpi_config,
                                 minute_cutoff=minute_rows_to_keep(now, settings.history_minute_days, LONGEST),
                                 until=stop)
    written = store.replace_source(f"backfill:{name or file.name}", rows)
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(stats.rejected.items())) or "none"
    typer.echo(f"{stats.events} events folded into {written} history rows; {stats.duplicates} duplicates, "
               f"{stats.live} at or after the live history, rejected: {rejected}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
