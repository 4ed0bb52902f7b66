"""Fixtures shared by unit, integration and browser tests (helpers live in tests/support/)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from db.engine import connect
from services.broker import EmbeddedBroker, free_port
from tests.support.postgres import postgres_server, schema_url


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL of a PostgreSQL server (SQM_TEST_POSTGRES_URL, or a throw-away one started here)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, migrated once: `engine` copies it (0.01 s) instead of migrating (0.3-0.6 s)."""
    path = tmp_path_factory.mktemp("template") / "sqm.db"
    connect(f"sqlite:///{path}").dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database on SQLite (a copy of `sqlite_template`) and on PostgreSQL (a schema of its own),
    for each test."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "sqm.db")
        eng = connect(f"sqlite:///{tmp_path}/sqm.db", migrate=False)
        yield eng
        eng.dispose()
        return
    with schema_url(request.getfixturevalue("postgres")) as url:
        eng = connect(url)
        yield eng
        eng.dispose()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker, one for the whole session (every test uses topics of its own)."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(log)).start()
    yield b
    b.stop()
