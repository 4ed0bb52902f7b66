"""Schemathesis over /openapi.json of a running API (real broker, worker, database): whatever it is
sent, with or without tokens, no answer is a server error (5xx)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from services.broker import EmbeddedBroker
from services.loadgen import LIVE, lifecycles, random_stream
from tests.support.stack import Stack, produce, wait_for

pytestmark = pytest.mark.integration
ADMIN = "fuzz-admin-token-0123456789"
INGEST = "fuzz-ingest-token-0123456789"
EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzz_stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # rates no fuzzer reaches: 429 is not a server error, but it would stop the cases short of the routes
    stack = Stack(broker, tmp_path_factory.mktemp("fuzz"), SQM_ADMIN_TOKEN=ADMIN, SQM_INGEST_TOKEN=INGEST,
                  SQM_API_WRITE_RATE="100000", SQM_API_WRITE_BURST="100000", SQM_API_READ_RATE="0")
    try:
        stack.worker()
        stack.history_writer()  # before the API: it boots while stack.api() waits for /healthz
        stack.api()
        now = time.time()
        events = random_stream(400, now, seed=51, bands=LIVE) + lifecycles(200, now, seed=52)
        produce(stack, events)
        wait_for(lambda: stack.seen_messages() >= len(events), 90, "every event", stack)
        yield stack
    finally:
        stack.stop()


def fuzz(stack: Stack, headers_of: Callable[[str], dict[str, str]]) -> int:
    """Every operation of the schema, `EXAMPLES` generated cases each; returns the cases sent."""
    schema = schemathesis.openapi.from_url(stack.url + "/openapi.json")
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(headers=headers_of(case.path), checks=[not_a_server_error], timeout=20)

        check()
    return sent


def test_no_server_error_anonymous(fuzz_stack: Stack) -> None:
    assert fuzz(fuzz_stack, lambda path: {}) > 200


def test_no_server_error_with_tokens(fuzz_stack: Stack) -> None:
    def auth(path: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {INGEST if path == '/v1/events' else ADMIN}"}

    assert fuzz(fuzz_stack, auth) > 200
