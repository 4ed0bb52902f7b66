"""Fixtures shared by unit and integration tests (helpers live in tests/support/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL of a PostgreSQL server (SQM_TEST_POSTGRES_URL, or a throw-away one started here)."""
    with postgres_server() as url:
        yield url
