"""Erlang C as the spec writes it (docs/workforce.md), for the tests: the ratio of sums A^k/k! in
60-digit decimal arithmetic, no recursion and no floats, independent of stream/erlang.py."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

PRECISION = 60  # digits


def p_wait_reference(n: int, a: float) -> Decimal:
    """The spec's P_wait(N) = (A^N/N! · N/(N−A)) / (Σ_{k<N} A^k/k! + A^N/N! · N/(N−A))."""
    if n <= a:
        return Decimal(1)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        big_a, term, total = Decimal(repr(a)), Decimal(1), Decimal(0)
        for k in range(n):
            total += term  # term = A^k/k!
            term = term * big_a / (k + 1)
        last = term * n / (n - big_a)
        return last / (total + last)


def sl_reference(n: int, a: float, t: float, h: float) -> float:
    if n <= a:
        return 0.0
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return float(1 - p_wait_reference(n, a) * Decimal(-(n - a) * t / h).exp())


def required_reference(a: float, t: float, h: float, target: float) -> int:
    n = math.floor(a) + 1
    while sl_reference(n, a, t, h) < target:
        n += 1
    return n
