"""Connecting to the database and bringing its schema up to date (Alembic, under a lock).

    engine = connect("sqlite:///var/sqm.db")   # creates the directory, upgrades the schema
    with Session(engine) as s: ...

`upgrade` runs at the start of the API, the notifier and the history writer, under a lock (an
advisory lock on PostgreSQL, a file lock on SQLite) so that two processes never migrate at once.
`unavailable(exc)` tells an unreachable or failing database (wait and retry) from an error about
the data of one statement (retrying would fail the same way).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url

MIGRATIONS = Path(__file__).with_name("migrations")
CONNECT_TIMEOUT_S = 10  # PostgreSQL: an unreachable host fails within this instead of the TCP timeout


def unavailable(error: BaseException) -> bool:
    """True for a database that cannot be reached or does not answer (server down, connection lost,
    pool exhausted, SQLite locked): the same work succeeds once it is back. False for an error about
    the data (a refused value, a constraint), which fails again however often it is retried."""
    if isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers (the API) do not block the notifier
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    if u.drivername == "postgresql":
        url = u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    pg = u.get_backend_name() == "postgresql" and "connect_timeout" not in u.query
    args = {"connect_timeout": CONNECT_TIMEOUT_S} if pg else {}
    return create_engine(url, pool_pre_ping=True, connect_args=args)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(731001)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(731001)"))
                conn.commit()
        return
    db = engine.url.database
    path = Path(db + ".migrate.lock") if db and db != ":memory:" else None
    if path is None:
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def connect(url: str, *, migrate: bool = True) -> Engine:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine
