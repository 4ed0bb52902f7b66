"""Integration fixtures: the real embedded broker (one per session) and a Stack of processes per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker, free_port
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(log)).start()
    yield b
    b.stop()


@pytest.fixture
def stack(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(broker, tmp_path)
    yield s
    s.stop()
