"""Closing the loop (PDCA's check): did the intervention work? Pure: readings in, a verdict out.

When a lead acknowledges an alert, the rule's KPI on the alert's scope and window is recorded, and
again `CHECKS_S` later (15 and 30 minutes), so that the lead, and whoever reviews the shift, sees
whether what was done moved the figure:

    >>> r = [Reading(0, 0.12, 200), Reading(900, 0.07, 180)]
    >>> verdict(">", r, resolved=False), verdict(">", r + [Reading(1800, 0.13, 170)], resolved=False)
    ('improved', 'not improved')
    >>> verdict(">", r, resolved=True), verdict("<", [Reading(0, 0.6, 90)], resolved=False)
    ('recovered', 'waiting')

Verdicts: `waiting` (no check yet), `recovered` (the alert has resolved: its rule, with its
hysteresis, judges the figure healthy again), `improved` (the latest check moved the right way from
the acknowledgement), `not improved`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHECKS_S = (900, 1800)  # after the acknowledgement: 15 and 30 minutes
LATE_S = 300  # a check not taken within 5 minutes of its time (the API was down) is left out, not mislabelled
Verdict = str  # waiting, recovered, improved, not improved


@dataclass(frozen=True, slots=True)
class Reading:
    after_s: int  # seconds after the acknowledgement (0: at it)
    value: float | None
    count: int


def due_checks(acked_age_s: float, done: set[int]) -> list[int]:
    """The checks (seconds after the acknowledgement) whose time has come and that are not recorded.

    >>> due_checks(1000, set()), due_checks(1000, {900}), due_checks(2000, {900}), due_checks(2000, set())
    ([900], [], [1800], [1800])
    """
    return [c for c in CHECKS_S if c <= acked_age_s <= c + LATE_S and c not in done]


def verdict(op: str, readings: Sequence[Reading], *, resolved: bool) -> Verdict:
    """Whether the figure moved the right way since the acknowledgement (`op`: the rule's comparison,
    `<` when low is bad)."""
    if resolved:
        return "recovered"
    at_ack = next((r for r in readings if r.after_s == 0), None)
    later = [r for r in readings if r.after_s > 0 and r.value is not None]
    if not later:
        return "waiting"
    last = max(later, key=lambda r: r.after_s)
    assert last.value is not None
    if at_ack is None or at_ack.value is None:
        return "not improved"
    better = last.value > at_ack.value if op in ("<", "<=") else last.value < at_ack.value
    return "improved" if better else "not improved"
