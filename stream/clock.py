"""Time conversions used across the project: epoch seconds <-> aware UTC datetimes <-> RFC 3339. Pure.

    >>> rfc3339(0.0)
    '1970-01-01T00:00:00.000Z'
    >>> rfc3339_dt(utc(1.5))
    '1970-01-01T00:00:01.500Z'
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(d: datetime) -> datetime:
    """A datetime without a zone is taken as UTC (SQLite hands back naive ones)."""
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


def rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds and a `Z`."""
    return rfc3339_dt(utc(ts))


def rfc3339_dt(d: datetime) -> str:
    return aware(d).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_opt(d: datetime | None) -> str | None:
    return rfc3339_dt(d) if d is not None else None
