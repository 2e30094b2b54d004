"""All timestamps are naive UTC: identical semantics on PostgreSQL and SQLite.

The clock is injectable (``set_clock``): tests move a fake clock forward instead of
sleeping (``tenantpilot.testing``'s ``clock`` fixture). Code that asks the time asks here:
``utcnow`` for rows, ``timestamp`` for epoch seconds (signatures, RQ scores)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

_clock: Callable[[], datetime] | None = None  # None: the system clock


def utcnow() -> datetime:
    if _clock is not None:
        return _clock()
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str:
    """The one machine-readable form of a timestamp (``<time datetime>``, CSV, exports):
    ISO 8601 to the second with its offset, ``2026-12-01T17:45:00+00:00``. A naive value
    is stored UTC; None → ""."""
    if value is None:
        return ""
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return aware.isoformat(timespec="seconds")


def timestamp() -> float:
    """Seconds since the epoch, by the same clock as ``utcnow``."""
    return utcnow().replace(tzinfo=timezone.utc).timestamp()


def set_clock(clock: Callable[[], datetime] | None) -> Callable[[], datetime] | None:
    """Install ``clock`` (a callable returning naive UTC) for the whole process, or ``None``
    for the system clock again; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous
