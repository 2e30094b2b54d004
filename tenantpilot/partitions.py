"""Monthly range partitions of a PostgreSQL table (declarative partitioning).

A table made ``PARTITION BY RANGE (col)`` by its migration gets one partition per
calendar month, named ``<table>_yYYYYmMM``, plus ``<table>_default`` so an insert never
fails for lack of a partition. The scheduler keeps months created ahead, so the DEFAULT
partition normally stays empty; retention drops whole months instead of deleting rows.

PostgreSQL only: callers check ``is_partitioned`` first (SQLite keeps a plain table).
Bounds are read from the catalog (``pg_get_expr(relpartbound)``), never guessed from
names, so a partition made by hand is handled the same way.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

LOCK_TIMEOUT = "5s"
_BOUND_RE = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the DEFAULT partition
    end: datetime | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def month_start(t: datetime) -> datetime:
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(t: datetime, n: int) -> datetime:
    index = t.year * 12 + t.month - 1 + n
    return t.replace(year=index // 12, month=index % 12 + 1)


def partition_name(table: str, start: datetime) -> str:
    return f"{table}_y{start.year:04d}m{start.month:02d}"


def is_partitioned(conn, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
        "WHERE c.relname = :t AND c.relnamespace = to_regnamespace(current_schema())::oid"), {"t": table}).scalar())


def partitions(conn, table: str) -> list[Partition]:
    """The table's partitions, oldest first, the DEFAULT partition last."""
    found = []
    for name, bound in conn.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :t AND p.relnamespace = to_regnamespace(current_schema())::oid"), {"t": table}):
        m = _BOUND_RE.search(bound)
        if m is None:
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, datetime.fromisoformat(m.group(1)), datetime.fromisoformat(m.group(2))))
    return sorted(found, key=lambda p: (p.start is None, p.start or datetime.min))


def _lock(conn, table: str) -> None:
    # Two schedulers (a deploy overlap) or a scheduler and the release phase must not
    # race on the catalog: one transaction-scoped advisory lock per table.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"tenantpilot.partitions.{table}"})
    # Creating or dropping a partition briefly locks the parent against writers; behind
    # a long reader that lock would queue every insert (the recorder in the start seam).
    # Give up instead: the caller retries at its next slot (or deletes rows instead).
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def ensure_months(conn, table: str, column: str, first: datetime, last: datetime) -> list[str]:
    """Create the monthly partitions from ``first``'s month to ``last``'s month (both
    included) that do not exist yet, on ``conn``'s transaction; returns their names.

    Rows of a new month that already sit in the DEFAULT partition (a clock ahead of the
    scheduler, a backfill) are moved: PostgreSQL refuses a new partition whose range has
    rows in DEFAULT, so the month is built as a plain table, the rows move into it, and
    then it is attached (which validates against DEFAULT, now empty for that range)."""
    _lock(conn, table)
    existing = partitions(conn, table)
    default = next((p.name for p in existing if p.is_default), None)
    have = {p.start for p in existing if not p.is_default}
    made = []
    month = month_start(first)
    while month <= last:
        nxt = add_months(month, 1)
        if month not in have:
            name = partition_name(table, month)
            bounds = f"FROM ('{month.isoformat(sep=' ')}') TO ('{nxt.isoformat(sep=' ')}')"
            strays = default is not None and conn.execute(text(
                f'SELECT 1 FROM "{default}" WHERE "{column}" >= :a AND "{column}" < :b LIMIT 1'),
                {"a": month, "b": nxt}).scalar()
            if strays:
                conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
                conn.execute(text(
                    f'WITH moved AS (DELETE FROM "{default}" WHERE "{column}" >= :a AND "{column}" < :b RETURNING *) '
                    f'INSERT INTO "{name}" SELECT * FROM moved'), {"a": month, "b": nxt})
                conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES {bounds}'))
            else:
                conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" FOR VALUES {bounds}'))
            made.append(name)
        month = nxt
    return made


def drop_before(conn, table: str, cutoff: datetime) -> list[tuple[str, int]]:
    """Drop the monthly partitions whose whole range is before ``cutoff``, on ``conn``'s
    transaction; returns (name, rows it held). The month holding the cutoff stays: its
    older rows are the caller's to delete."""
    _lock(conn, table)
    dropped = []
    for p in partitions(conn, table):
        if p.is_default or p.end > cutoff:
            continue
        rows = conn.execute(text(f'SELECT count(*) FROM "{p.name}"')).scalar()
        conn.execute(text(f'DROP TABLE "{p.name}"'))
        dropped.append((p.name, int(rows)))
    return dropped
