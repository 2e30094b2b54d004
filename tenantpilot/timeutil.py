"""All timestamps are naive UTC: identical semantics on PostgreSQL and SQLite."""
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
