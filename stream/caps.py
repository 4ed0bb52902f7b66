"""Caps on the distinct values of each dimension a partition keeps (cardinality protection). Pure.

Team, queue, channel, tier and agent are free text from upstream. Without a cap, a producer that sends
a million distinct team names grows every piece of sqm without bound: the worker's buckets, the alert
evaluator, the API's view, `/metrics` and every dashboard. So each source partition admits at most
`cap` distinct values per kind (those with KPI buckets in the last 24 h); an event naming a value
beyond the cap counts under `<kind>:other` instead (`team:other`), and the overflow is counted.

Admission is decided from the partition's own state, so a replay after a crash decides as the first
run did (the buckets that decided are reloaded with their watermarks). A value leaves the index when
its last bucket expires (24 h without events), which frees its place.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from stream.scopes import split_scope

E = TypeVar("E", bound=BaseModel)

OTHER = "other"
#: default caps per source partition; the whole monitor shows at most `cap x partitions` values
DEFAULT_CAPS: dict[str, int] = {"team": 100, "queue": 200, "channel": 20, "tier": 10, "agent": 2000}
#: scope kind -> the event field that names it
FIELDS: dict[str, str] = {"team": "team", "queue": "queue", "channel": "channel", "tier": "customer_tier",
                          "agent": "agent"}


class ScopeIndex:
    """The distinct values of each capped kind among a partition's buckets, with reference counts."""

    def __init__(self, caps: dict[str, int]) -> None:
        self.caps = caps
        self.refs: dict[str, dict[str, int]] = {kind: {} for kind in caps}

    def add(self, scope: str) -> None:
        """A bucket of `scope` was created."""
        kind, value = split_scope(scope)
        refs = self.refs.get(kind)
        if refs is not None:
            refs[value] = refs.get(value, 0) + 1

    def remove(self, scope: str) -> None:
        """A bucket of `scope` was dropped."""
        kind, value = split_scope(scope)
        refs = self.refs.get(kind)
        if refs is not None and value in refs:
            refs[value] -= 1
            if refs[value] <= 0:
                del refs[value]

    def admit(self, event: E) -> tuple[E, tuple[str, ...]]:
        """The event with every value beyond its kind's cap replaced by `other`, and those kinds."""
        update: dict[str, str] = {}
        kinds: list[str] = []
        for kind, field in FIELDS.items():
            value = getattr(event, field, None)
            refs = self.refs.get(kind)
            if value is None or value == OTHER or refs is None:
                continue
            if value not in refs and len(refs) >= self.caps[kind]:
                update[field] = OTHER
                kinds.append(kind)
        if not update:
            return event, ()
        return event.model_copy(update=update), tuple(kinds)
