"""Alembic environment: run by `alerts.db.upgrade` (a connection is passed in) or by the alembic CLI
(`alembic -c alerts/alembic.ini upgrade head`, URL from SQM_DATABASE_URL through the settings)."""

from __future__ import annotations

from alembic import context

from alerts.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from services.config import Settings

    engine = make_engine(config.get_main_option("sqlalchemy.url") or Settings().database_url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
