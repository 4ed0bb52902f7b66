"""Erlang C staffing (docs/workforce.md): how many agents a queue needs for its service level.

Pure. The probability of waiting comes from Erlang B by its recursion, never from factorials, so it
stays exact in floating point up to tens of thousands of Erlangs (A^N/N! overflows a float at N = 171):

    B(0) = 1,  B(n) = A·B(n−1) / (n + A·B(n−1))
    P_wait(N) = N·B(N) / (N − A·(1 − B(N)))           for N > A (1 otherwise)
    SL(N) = 1 − P_wait(N) · e^(−(N−A)·T/h)            for N > A (0 otherwise)

which is the spec's ratio of sums divided through by Σ A^k/k!. A classic example: 10 calls a minute
of 3 minutes each is 30 Erlangs, and 80 % within 20 s needs 35 agents:

    >>> a = traffic(10 / 60, 180)
    >>> a, required_agents(a, threshold_s=20, handle_s=180, target=0.8)
    (30.0, 35)
    >>> round(service_level(35, a, threshold_s=20, handle_s=180), 3)
    0.837
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def traffic(lambda_per_s: float, handle_s: float) -> float:
    """The offered traffic A = λ·h in Erlangs."""
    return max(0.0, lambda_per_s) * max(0.0, handle_s)


def erlang_b(n: int, a: float) -> float:
    """Erlang B: the blocking probability of n servers at a Erlangs."""
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def _c_from_b(n: int, a: float, b: float) -> float:
    return 1.0 if n <= a else n * b / (n - a * (1.0 - b))


def erlang_c(n: int, a: float) -> float:
    """P_wait: the probability that a call waits with n agents at a Erlangs (1 when n <= a)."""
    return 1.0 if n <= a else _c_from_b(n, a, erlang_b(n, a))


def _sl(n: int, a: float, c: float, threshold_s: float, handle_s: float) -> float:
    if n <= a:
        return 0.0
    if handle_s <= 0:
        return 1.0  # calls of no length wait for nobody
    return max(0.0, 1.0 - c * math.exp(-(n - a) * threshold_s / handle_s))


def service_level(n: int, a: float, *, threshold_s: float, handle_s: float) -> float:
    """SL(n): the share of calls answered within threshold_s with n agents (0 when n <= a)."""
    return _sl(n, a, erlang_c(n, a), threshold_s, handle_s)


def required_agents(a: float, *, threshold_s: float, handle_s: float, target: float) -> int:
    """The smallest N > A with SL(N) >= target (0 when there is no traffic). One pass of the
    recursion: B is carried from N to N+1, so the search costs O(N) in all."""
    if a <= 0:
        return 0
    target = min(target, 1.0)
    n = math.floor(a) + 1
    b = erlang_b(n, a)
    limit = n + 1000 + int(50 * math.sqrt(a))  # SL reaches any target below 1 long before this
    while n < limit and _sl(n, a, _c_from_b(n, a, b), threshold_s, handle_s) < target:
        n += 1
        b = a * b / (n + a * b)
    return n


@dataclass(frozen=True, slots=True)
class Staffing:
    """The staffing figures of one queue, and the inputs they came from (GET /v1/staffing)."""

    lambda_per_s: float
    handle_time_s: float
    threshold_s: float
    target: float
    traffic_erlangs: float
    required_agents: int
    agents: int  # staffed minus away: the agents who could take a call
    staffing_gap: int  # agents − required_agents (negative: short)
    predicted_service_level: float | None  # SL(agents); None without traffic


def staffing(*, lambda_per_s: float, handle_s: float, threshold_s: float, target: float, agents: int) -> Staffing:
    """Erlang C for one queue: the traffic, the agents it needs and the service level its agents give.

    >>> s = staffing(lambda_per_s=10 / 60, handle_s=180, threshold_s=20, target=0.8, agents=33)
    >>> s.required_agents, s.staffing_gap, round(s.predicted_service_level or 0, 3)
    (35, -2, 0.649)
    """
    a = traffic(lambda_per_s, handle_s)
    need = required_agents(a, threshold_s=threshold_s, handle_s=handle_s, target=target)
    predicted = service_level(agents, a, threshold_s=threshold_s, handle_s=handle_s) if lambda_per_s > 0 else None
    return Staffing(lambda_per_s, handle_s, threshold_s, target, a, need, agents, agents - need, predicted)
