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


def kind_of(scope: str) -> str:
    """'team' for 'team:billing', 'all' for 'all'."""
    return scope.split(":", 1)[0]


def name_of(scope: str) -> str:
    """'billing' for 'team:billing', 'all' for 'all'."""
    return scope.split(":", 1)[1] if ":" in scope else scope


def is_valid_scope(scope: str) -> bool:
    kind, _, name = scope.partition(":")
    if scope == "all":
        return True
    return (kind in SCOPE_KINDS and kind != "all" and 1 <= len(name) <= 128 and name == name.strip()
            and is_clean_name(name))


@functools.lru_cache(maxsize=1 << 16)  # called per scope per record on the write and read paths
def scope_partition(scope: str, partitions: int) -> int:
    """The partition of the scope-keyed topics that holds `scope` (stable across processes and hosts)."""
    return zlib.crc32(scope.encode()) % partitions
