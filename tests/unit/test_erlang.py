"""Erlang C (docs/workforce.md) against the spec's formula computed independently: the ratio of
sums A^k/k! in 60-digit decimal arithmetic (no recursion, no floats), from 0.1 to 5,000 Erlangs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.erlang import erlang_c, required_agents, service_level, staffing, traffic
from tests.support.erlang_reference import p_wait_reference, required_reference, sl_reference

# (calls per hour, handle time s): a small queue to a centre of several thousand Erlangs
CASES = [(6, 240), (60, 300), (120, 180), (600, 300), (2_000, 420), (12_000, 300), (60_000, 300)]


@pytest.mark.parametrize(("per_hour", "handle_s"), CASES)
def test_staffing_matches_the_formula(per_hour: int, handle_s: float) -> None:
    a = traffic(per_hour / 3600, handle_s)
    for target, threshold in ((0.8, 20.0), (0.9, 15.0), (0.95, 60.0)):
        need = required_agents(a, threshold_s=threshold, handle_s=handle_s, target=target)
        assert need == required_reference(a, threshold, handle_s, target), (a, target)
        for n in {need - 1, need, need + 3}:
            assert math.isclose(erlang_c(n, a), float(p_wait_reference(n, a)), rel_tol=1e-9, abs_tol=1e-15)
            assert math.isclose(service_level(n, a, threshold_s=threshold, handle_s=handle_s),
                                sl_reference(n, a, threshold, handle_s), rel_tol=1e-9, abs_tol=1e-12)


def test_the_edges() -> None:
    assert required_agents(0.0, threshold_s=20, handle_s=300, target=0.8) == 0
    s = staffing(lambda_per_s=0.0, handle_s=300, threshold_s=20, target=0.8, agents=4)
    assert (s.traffic_erlangs, s.required_agents, s.staffing_gap, s.predicted_service_level) == (0.0, 0, 4, None)
    # fewer agents than Erlangs: everyone waits, no service level
    assert erlang_c(10, 12.5) == 1.0 and service_level(10, 12.5, threshold_s=20, handle_s=300) == 0.0
    # a target of 100 % ends (at the first N whose SL rounds to 1), and a threshold of 0 is P(no wait)
    assert required_agents(5.0, threshold_s=20, handle_s=300, target=1.0) < 100
    assert math.isclose(service_level(8, 5.0, threshold_s=0, handle_s=300), 1 - erlang_c(8, 5.0))


@settings(max_examples=200, deadline=None)
@given(a=st.floats(0.01, 3000), t=st.floats(0, 120), h=st.floats(10, 1800), target=st.floats(0.05, 0.99))
def test_required_is_the_smallest_that_meets_the_target(a: float, t: float, h: float, target: float) -> None:
    n = required_agents(a, threshold_s=t, handle_s=h, target=target)
    assert n > a and service_level(n, a, threshold_s=t, handle_s=h) >= target
    assert n - 1 <= a or service_level(n - 1, a, threshold_s=t, handle_s=h) < target
    assert 0.0 <= erlang_c(n, a) <= 1.0
