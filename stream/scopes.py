"""Scopes of an event (kpis.md): `all`, `team:x`, `agent:x`, `channel:x`, `tier:x`, `queue:x`. No I/O."""

from __future__ import annotations

import functools
import zlib

from stream.events import Event, is_clean_name

SCOPE_KINDS = ("all", "team", "agent", "channel", "tier", "queue")


def scopes_of(ev: Event) -> list[str]:
    """Every scope the event's dimensions name; `all` first."""
    out = ["all", f"team:{ev.team}", f"channel:{ev.channel}", f"tier:{ev.customer_tier}"]
    agent = getattr(ev, "agent", None)
    if agent is not None:
        out.append(f"agent:{agent}")
    queue = getattr(ev, "queue", None)
    if queue is not None:
        out.append(f"queue:{queue}")
    return out


def split_scope(scope: str) -> tuple[str, str]:
    """The one parse of a `kind:name` scope string: ('team', 'billing'); ('all', '') for 'all'.

    >>> split_scope("team:billing"), split_scope("agent:a:1"), split_scope("all")
    (('team', 'billing'), ('agent', 'a:1'), ('all', ''))
    """
    kind, _, name = scope.partition(":")
    return kind, name


def kind_of(scope: str) -> str:
    """'team' for 'team:billing', 'all' for 'all'."""
    return split_scope(scope)[0]


def name_of(scope: str) -> str:
    """'billing' for 'team:billing', 'all' for 'all'."""
    return split_scope(scope)[1] if ":" in scope else scope


def is_valid_scope(scope: str) -> bool:
    if scope == "all":
        return True
    kind, name = split_scope(scope)
    return (kind in SCOPE_KINDS and kind != "all" and 1 <= len(name) <= 128 and name == name.strip()
            and is_clean_name(name))


def is_every_of_kind(selector: str) -> bool:
    """'team:*': every scope of one kind (a rule's or a target's selector)."""
    kind, name = split_scope(selector)
    return name == "*" and kind in SCOPE_KINDS and kind != "all"


def is_scope_selector(selector: str) -> bool:
    """One scope, or every scope of a kind (`team:*`)."""
    return is_valid_scope(selector) or is_every_of_kind(selector)


@functools.lru_cache(maxsize=1 << 16)  # called per scope per record on the write and read paths
def scope_partition(scope: str, partitions: int) -> int:
    """The partition of the scope-keyed topics that holds `scope` (stable across processes and hosts)."""
    return zlib.crc32(scope.encode()) % partitions
