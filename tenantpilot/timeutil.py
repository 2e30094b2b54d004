"""All timestamps are naive UTC: identical semantics on PostgreSQL and SQLite."""
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_utc(value: datetime | None) -> str:
    """The one machine-readable form of a timestamp (``<time datetime>``, CSV, exports):
    ISO 8601 to the second with its offset, ``2026-12-01T17:45:00+00:00``. A naive value
    is stored UTC; None → ""."""
    if value is None:
        return ""
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return aware.isoformat(timespec="seconds")
