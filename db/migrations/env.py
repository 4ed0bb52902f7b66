"""Alembic environment: run by `db.engine.upgrade` (a connection is passed in) or by the alembic CLI
for new revisions: `alembic -c db/alembic.ini -x url=sqlite:///var/sqm.db revision --autogenerate -m "..."`
(the URL from `-x url=...`, else SQM_DATABASE_URL)."""

from __future__ import annotations

import os

from alembic import context

from db.engine import make_engine
from db.schema import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("SQM_DATABASE_URL")
    if not url:
        raise SystemExit("name the database: alembic -c db/alembic.ini -x url=<SQLAlchemy URL> ...")
    engine = make_engine(url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
