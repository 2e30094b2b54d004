"""Hourly rollup of completed runs for the control tower (SPEC 7), kept by the ledger.

Two tables, both keyed by the hour the run was *created* (the dashboard windows runs by
creation):
- ``operation_runs_hourly``: completed runs per (hour, type, outcome) and the sum of their
  ``tenants_failed``;
- ``operation_run_failed_tenants_hourly``: failed tenant rows of completed runs per
  (hour, tenant).

Written once per run, in the transaction that completes it (``record_completed``, called
from ``runs._mark_completed``): a completed run's outcome, ``tenants_failed`` and tenant
rows never change again, so the rollup is exact. Nothing is written at creation or per
tenant: the start seam and the tenant hot path stay as they were.

The dashboard adds what the rollup cannot hold yet, from raw rows, in the same statement
(one snapshot, so a run completing meanwhile is counted once):
- the window's partial first hour: every run created in [since, next whole hour), by
  ``ix_operation_runs_created_id`` (at most one hour of runs);
- the active runs created in the whole hours, by ``ix_operation_runs_status_created``
  (queued/running runs are few: they are not in the rollup yet).

Existing ledgers are backfilled by migration 0011_runs_hourly (the same statements as
``rebuild``); ``flask runs rebuild-rollup`` recounts both tables from the ledger.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text

from .extensions import db
from .models import OperationRun, OperationRunFailedTenantHourly, OperationRunHourly, OperationRunTenant

RUNS = OperationRunHourly.__table__
FAILED_TENANTS = OperationRunFailedTenantHourly.__table__


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + timedelta(hours=1)


def _insert(conn):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert


def record_completed(run: OperationRun) -> None:
    """Fold a run that is completing into the rollup, on the session's transaction (the
    completing one). Call it once per run, with its final outcome and tenants_failed."""
    conn = db.session.connection()
    bucket = floor_hour(run.created_at)
    stmt = _insert(conn)(RUNS).values(bucket_start=bucket, type=run.type, outcome=run.outcome, runs=1,
                                      tenants_failed=run.tenants_failed or 0)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["bucket_start", "type", "outcome"],
        set_={"runs": RUNS.c.runs + 1, "tenants_failed": RUNS.c.tenants_failed + stmt.excluded.tenants_failed}))
    if not run.tenants_failed:
        return  # every failed tenant row is accounted into tenants_failed before completion
    rt = OperationRunTenant.__table__
    # A tenant has one row per run: each failed row adds 1 to its (hour, tenant) bucket.
    # ORDER BY: concurrent completions lock the buckets in one order (no deadlock).
    failed_rows = (select(literal(bucket, RUNS.c.bucket_start.type).label("bucket_start"), rt.c.tenant_id,
                          literal(1).label("failed"))
                   .where(rt.c.run_id == run.id, rt.c.status == "failed").order_by(rt.c.tenant_id))
    stmt = _insert(conn)(FAILED_TENANTS).from_select(["bucket_start", "tenant_id", "failed"], failed_rows)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["bucket_start", "tenant_id"], set_={"failed": FAILED_TENANTS.c.failed + 1}))


def hour_expr(column, dialect: str):
    if dialect == "postgresql":
        return func.date_trunc("hour", column)
    # SQLite stores SQLAlchemy DateTimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)


def rebuild() -> None:
    """Recount both tables from the ledger's completed runs and commit (after a bulk load,
    or to repair; `flask runs rebuild-rollup`). Runs completing meanwhile wait for it on
    PostgreSQL (table lock), then add themselves: nothing is lost or counted twice."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        db.session.execute(text("LOCK TABLE operation_runs_hourly, operation_run_failed_tenants_hourly "
                                "IN SHARE ROW EXCLUSIVE MODE"))
    db.session.execute(delete(OperationRunHourly))
    db.session.execute(delete(OperationRunFailedTenantHourly))
    r = OperationRun.__table__
    hour = hour_expr(r.c.created_at, dialect).label("bucket_start")
    db.session.execute(insert(OperationRunHourly).from_select(
        ["bucket_start", "type", "outcome", "runs", "tenants_failed"],
        select(hour, r.c.type, r.c.outcome, func.count(), func.coalesce(func.sum(r.c.tenants_failed), 0))
        .where(r.c.status == "completed").group_by(hour, r.c.type, r.c.outcome)))
    rt = OperationRunTenant.__table__
    db.session.execute(insert(OperationRunFailedTenantHourly).from_select(
        ["bucket_start", "tenant_id", "failed"],
        select(hour, rt.c.tenant_id, func.count())
        .select_from(r.join(rt, rt.c.run_id == r.c.id))
        .where(r.c.status == "completed", rt.c.status == "failed").group_by(hour, rt.c.tenant_id)))
    db.session.commit()
