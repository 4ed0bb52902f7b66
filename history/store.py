"""The KPI history in SQL (SQLAlchemy; SQLite or PostgreSQL): write, roll up, read. I/O only.

    store = HistoryStore(engine)
    store.upsert([("m", "team:billing", 1_800_000_000, acc)], source="live")
    store.series("team:billing", start, end, step=300)      # [(step start, merged Acc), ...]

Writes replace a row (the writer and the backfill always write a row's whole accumulator), so that
writing the same row twice changes nothing: a writer restarted from the state topic, or a file
backfilled again, never counts twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.schema import KpiHistoryRow
from history.series import HOUR, MINUTE, HistoryRow, floor, previous_window
from stream.clock import utcnow
from stream.folds import IX, Acc

LIVE = "live"
CHUNK = 500


class HistoryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self) -> Any:
        return (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(KpiHistoryRow)

    def upsert(self, rows: Iterable[HistoryRow], source: str = LIVE) -> int:
        """Write each row's accumulator (replacing what the row held). Returns the rows written."""
        with Session(self.engine) as s, s.begin():
            return self._upsert(s, rows, source)

    def _upsert(self, s: Session, rows: Iterable[HistoryRow], source: str) -> int:
        now = utcnow()
        values = [{"resolution": r, "scope": sc, "start": t, "source": source, "acc": acc.to_json(),
                   "updated_at": now} for r, sc, t, acc in rows]
        for i in range(0, len(values), CHUNK):
            stmt = self._insert().values(values[i:i + CHUNK])
            s.execute(stmt.on_conflict_do_update(
                index_elements=["resolution", "scope", "start", "source"],
                set_={"acc": stmt.excluded.acc, "updated_at": stmt.excluded.updated_at}))
        return len(values)

    def insert_missing(self, rows: Iterable[HistoryRow], source: str = LIVE) -> int:
        """Write the rows that do not exist yet; leave existing ones as they are."""
        now = utcnow()
        values = [{"resolution": r, "scope": s, "start": t, "source": source, "acc": acc.to_json(),
                   "updated_at": now} for r, s, t, acc in rows]
        with Session(self.engine) as s, s.begin():
            for i in range(0, len(values), CHUNK):
                s.execute(self._insert().values(values[i:i + CHUNK]).on_conflict_do_nothing())
        return len(values)

    def replace_source(self, source: str, rows: Sequence[HistoryRow]) -> int:
        """Make `source` hold exactly `rows`, in one transaction (a backfilled file written again
        replaces itself; a crash midway leaves the old rows)."""
        with Session(self.engine) as s, s.begin():
            s.execute(delete(KpiHistoryRow).where(KpiHistoryRow.source == source))
            return self._upsert(s, rows, source)

    def rollup(self, cutoff: int, batch: int = 5000) -> int:
        """Merge minute rows that start before `cutoff` into hour rows (per scope and source) and delete
        them, one transaction per batch. Returns the minute rows rolled up."""
        done = 0
        while True:
            with Session(self.engine) as s, s.begin():
                minutes = list(s.scalars(select(KpiHistoryRow).where(
                    KpiHistoryRow.resolution == "m", KpiHistoryRow.start < cutoff)
                    .order_by(KpiHistoryRow.scope, KpiHistoryRow.source, KpiHistoryRow.start).limit(batch)))
                if not minutes:
                    return done
                hours: dict[tuple[str, int, str], Acc] = defaultdict(Acc)
                for m in minutes:
                    hours[(m.scope, floor(m.start, HOUR), m.source)].merge(Acc.from_json(m.acc))
                for (scope, hour, source), acc in hours.items():
                    row = s.get(KpiHistoryRow, ("h", scope, hour, source))
                    if row is None:
                        s.add(KpiHistoryRow(resolution="h", scope=scope, start=hour, source=source,
                                            acc=acc.to_json(), updated_at=utcnow()))
                    else:
                        row.acc, row.updated_at = Acc.from_json(row.acc).merge(acc).to_json(), utcnow()
                s.execute(delete(KpiHistoryRow).where(tuple_(
                    KpiHistoryRow.resolution, KpiHistoryRow.scope, KpiHistoryRow.start, KpiHistoryRow.source)
                    .in_([("m", m.scope, m.start, m.source) for m in minutes])))
                done += len(minutes)

    def purge(self, before: int) -> int:
        """Delete rows that start before `before` (the history's retention)."""
        with self.engine.begin() as conn:
            return conn.execute(delete(KpiHistoryRow).where(KpiHistoryRow.start < before)).rowcount

    def rows(self, scope: str, start: int, end: int) -> list[tuple[str, int, Acc]]:
        """(resolution, start, accumulator) of every row of the scope with start in [start, end), every
        source merged per (resolution, start)."""
        merged: dict[tuple[str, int], Acc] = defaultdict(Acc)
        with Session(self.engine) as s:
            for res, t, acc in s.execute(select(KpiHistoryRow.resolution, KpiHistoryRow.start, KpiHistoryRow.acc)
                                         .where(KpiHistoryRow.scope == scope, KpiHistoryRow.start >= start,
                                                KpiHistoryRow.start < end)):
                merged[(res, t)].merge(Acc.from_json(acc))
        return sorted((r, t, a) for (r, t), a in merged.items())

    def merged_many(self, scopes: Sequence[str], start: int, end: int) -> dict[str, tuple[Acc, int]]:
        """`merged` for many scopes in one query per CHUNK scopes (a ranking of 2,000 agents is a few
        queries, not 2,000): each scope's accumulator of [start, end) and how many rows it merges."""
        merged: dict[str, dict[tuple[str, int], Acc]] = {s: defaultdict(Acc) for s in scopes}
        wanted = list(merged)
        with Session(self.engine) as s:
            for i in range(0, len(wanted), CHUNK):
                q = (select(KpiHistoryRow.scope, KpiHistoryRow.resolution, KpiHistoryRow.start, KpiHistoryRow.acc)
                     .where(KpiHistoryRow.scope.in_(wanted[i:i + CHUNK]), KpiHistoryRow.start >= start,
                            KpiHistoryRow.start < end))
                for scope, res, t, acc in s.execute(q):
                    merged[scope][(res, t)].merge(Acc.from_json(acc))
        out = {}
        for scope, rows in merged.items():
            total = Acc()
            for acc in rows.values():
                total.merge(acc)
            out[scope] = (total, len(rows))
        return out

    def merged(self, scope: str, start: int, end: int) -> tuple[Acc, int]:
        """The accumulator of [start, end) and how many rows it merges."""
        rows = self.rows(scope, start, end)
        out = Acc()
        for _, _, acc in rows:
            out.merge(acc)
        return out, len(rows)

    def window_before(self, scope: str, window_s: int, now: float, shift_s: int) -> tuple[Acc, int]:
        """The accumulator of the window `window_s` that ended `shift_s` before `now` (the same minute
        buckets a live window covers), and how many rows it merges (0: the history holds nothing then)."""
        start, end = previous_window(now, window_s, shift_s)
        return self.merged(scope, floor(start, MINUTE), floor(end, MINUTE) + MINUTE)

    def series(self, scope: str, start: int, end: int, step: int) -> list[tuple[int, Acc]]:
        """Per step of [start, end): the merge of the rows that start in it (empty steps included)."""
        first = floor(start, step)
        out = {t: Acc() for t in range(first, end, step)}
        for _, t, acc in self.rows(scope, first, end):
            out[floor(t, step)].merge(acc)
        return sorted(out.items())

    def counts(self, scope: str, fields: Sequence[str], start: int, end: int, step: int) -> dict[str, list[float]]:
        """Per step of [start, end): the accumulator counters `fields` (stream.folds.FIELDS) of the scope.
        A row longer than a step (an hour row, for quarter hours) is spread evenly over the steps it
        spans, so a forecaster reads an hour as an hour, not as a spike at its first quarter."""
        first = floor(start, step)
        n = max(0, -(-(end - first) // step))
        out = {f: [0.0] * n for f in fields}
        ixs = [(out[f], IX[f]) for f in fields]
        for res, t, acc in self.rows(scope, first - HOUR, end):
            span = HOUR if res == "h" else MINUTE
            parts = max(1, span // step)
            for series, i in ixs:
                x = acc.v[i]
                if not x:
                    continue
                for k in range(parts):
                    idx = (t + k * step - first) // step
                    if 0 <= idx < n:
                        series[idx] += x / parts
        return out

    def live_since(self) -> int | None:
        """The first minute the live writer recorded (events before it can only come from a backfill)."""
        with Session(self.engine) as s:
            return s.scalar(select(func.min(KpiHistoryRow.start)).where(KpiHistoryRow.source == LIVE))
