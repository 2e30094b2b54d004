"""SLA policy: a finding is due a number of days after it was first seen, by severity.

Defaults: critical 3, high 7, medium 30, low 90. Override any of them with the setting
``FINDINGS_SLA_DAYS`` (app config: a dict, e.g. ``{"critical": 1}``; environment: JSON); severities not named keep their
default. Read on every call, so it is the config of the app that runs the job.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from tenantpilot.sdk import setting

DEFAULT_SLA_DAYS = {"critical": 3, "high": 7, "medium": 30, "low": 90}


def sla_days() -> dict[str, int]:
    """Days until due, per severity, with the app's FINDINGS_SLA_DAYS applied."""
    override = setting("FINDINGS_SLA_DAYS") or {}
    days = {**DEFAULT_SLA_DAYS, **dict(override)}
    for severity, n in days.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"FINDINGS_SLA_DAYS[{severity!r}] must be a non-negative whole number of days")
    return days


def due_date(severity: str, first_seen_at: datetime) -> datetime | None:
    """The due date of an open finding (None for a severity without an SLA)."""
    days = sla_days().get(severity)
    return None if days is None else first_seen_at + timedelta(days=days)


class add_days(FunctionElement):
    """SQL ``timestamp + N days`` for PostgreSQL and SQLite (``add_days(ts, n)``).

    SQLite keeps timestamps as text (``YYYY-MM-DD HH:MM:SS.ffffff``); ``datetime()``
    drops the fraction, so it is appended again to keep the value exact."""

    type = DateTime()
    name = "add_days"
    inherit_cache = True


@compiles(add_days, "postgresql")
def _add_days_pg(element, compiler, **kw):
    ts, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"({ts} + make_interval(days => {days}))"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element, compiler, **kw):
    ts, days = (compiler.process(c, **kw) for c in element.clauses)
    return f"(datetime({ts}, '+' || ({days}) || ' days') || substr({ts}, 20))"
