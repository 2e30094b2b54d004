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


def timestamp() -> float:
    """Seconds since the epoch, by the same clock as ``utcnow``."""
    return utcnow().replace(tzinfo=timezone.utc).timestamp()


def set_clock(clock: Callable[[], datetime] | None) -> Callable[[], datetime] | None:
    """Install ``clock`` (a callable returning naive UTC) for the whole process, or ``None``
    for the system clock again; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous
