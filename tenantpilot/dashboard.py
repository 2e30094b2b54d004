"""Read-only queries behind the /system dashboard (SPEC 7): KPIs, top offenders, recent
failures and health.

Every function takes the window start (or "now") and returns plain data; none writes.
The run figures (KPIs, top failing types and tenants) read the hourly rollup of completed
runs (run_rollup.py) for the window's whole hours, plus from raw rows, in the same
statement, the runs of its partial first hour (a range on ``ix_operation_runs_created_id``)
and the still active runs (``ix_operation_runs_status_created``): exact, and the cost
follows the hours of the window, not its runs. Recent failures walk
``ix_operation_runs_created_id`` backwards and stop after ``limit``; their failed tenant
rows come from ``ix_operation_run_tenants_run_status``, labels from
``ix_operation_runs_type_created``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from flask import current_app
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import and_, case, exists, func, literal, or_, select, true, union_all

from .extensions import db
from .models import (ACTIVE_STATUSES, OperationalControlActivation, OperationRun, OperationRunFailedTenantHourly,
                     OperationRunHourly, OperationRunTenant)
from .queue import all_queues
from .run_rollup import ceil_hour
from .sanitize import safe_reason

log = logging.getLogger("tenantpilot.dashboard")


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    delta: timedelta


WINDOWS = {w.key: w for w in (Window("24h", "Last 24 hours", timedelta(hours=24)),
                              Window("7d", "Last 7 days", timedelta(days=7)),
                              Window("30d", "Last 30 days", timedelta(days=30)))}
DEFAULT_WINDOW = "24h"
# "Failed" on the dashboard, as on the console before it: a run with any failed tenant
# outcome; partially_succeeded is also reported on its own.
FAILED_OUTCOMES = ("failed", "partially_succeeded")


def parse_window(raw: str | None) -> tuple[Window, str | None]:
    """The selected window and an error message for an unknown value (then the default)."""
    if raw is None or raw == "":
        return WINDOWS[DEFAULT_WINDOW], None
    if raw in WINDOWS:
        return WINDOWS[raw], None
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    return WINDOWS[DEFAULT_WINDOW], f"Unknown window '{shown}': choose {', '.join(list(WINDOWS)[:-1])} or {list(WINDOWS)[-1]}."


# --- runs ---------------------------------------------------------------------------


def _raw_parts(since: datetime):
    """(first whole hour, conditions of the raw runs to add to the rollup): the runs of the
    window's partial first hour, and the active runs of its whole hours (run_rollup.py)."""
    first_full = ceil_hour(since)
    r = OperationRun.__table__
    return first_full, (and_(r.c.created_at >= since, r.c.created_at < first_full),
                        and_(r.c.status.in_(ACTIVE_STATUSES), r.c.created_at >= first_full))


def run_kpis(since: datetime) -> dict:
    """Runs created since ``since`` by outcome: started, succeeded, failed (incl.
    partially_succeeded), partially_succeeded; plus the runs active right now (active,
    running, queued), not windowed: a run queued last week is still queued now."""
    first_full, raw = _raw_parts(since)
    r, h = OperationRun.__table__, OperationRunHourly.__table__
    parts = union_all(
        select(h.c.outcome, h.c.runs.label("n")).where(h.c.bucket_start >= first_full),
        *(select(r.c.outcome, func.count().label("n")).where(cond).group_by(r.c.outcome) for cond in raw),
    ).subquery()
    by_outcome = {o: int(n) for o, n in db.session.execute(
        select(parts.c.outcome, func.sum(parts.c.n)).group_by(parts.c.outcome))}
    return _kpis(by_outcome)


def _kpis(by_outcome: dict) -> dict:
    """The KPI figures from the window's runs by outcome, plus the runs active right now
    (not windowed): one shape for the rollup and the raw version."""
    active = dict(db.session.execute(
        select(OperationRun.status, func.count()).where(OperationRun.status.in_(ACTIVE_STATUSES))
        .group_by(OperationRun.status)
    ).all())
    return {
        "started": sum(by_outcome.values()),
        "succeeded": by_outcome.get("succeeded", 0),
        "failed": sum(by_outcome.get(o, 0) for o in FAILED_OUTCOMES),
        "partially_succeeded": by_outcome.get("partially_succeeded", 0),
        "active": sum(active.values()),
        "running": active.get("running", 0),
        "queued": active.get("queued", 0),
    }


def top_failing_types(since: datetime, limit: int = 5) -> list[dict]:
    """Operation types with the most failed runs created since ``since``, ties broken by
    failed tenants (which include tenants failed in still-running runs). Each: type,
    label, failed_runs, failed_tenants."""
    first_full, raw = _raw_parts(since)
    r, h = OperationRun.__table__, OperationRunHourly.__table__
    parts = union_all(
        select(h.c.type, case((h.c.outcome.in_(FAILED_OUTCOMES), h.c.runs), else_=0).label("runs"),
               h.c.tenants_failed.label("tenants"))
        .where(h.c.bucket_start >= first_full, or_(h.c.outcome.in_(FAILED_OUTCOMES), h.c.tenants_failed > 0)),
        *(select(r.c.type, case((r.c.outcome.in_(FAILED_OUTCOMES), 1), else_=0).label("runs"),
                 r.c.tenants_failed.label("tenants"))
          .where(cond, or_(r.c.outcome.in_(FAILED_OUTCOMES), r.c.tenants_failed > 0)) for cond in raw),
    ).subquery()
    failed_runs, failed_tenants = func.sum(parts.c.runs), func.coalesce(func.sum(parts.c.tenants), 0)
    rows = db.session.execute(
        select(parts.c.type, failed_runs.label("runs"), failed_tenants.label("tenants"))
        .group_by(parts.c.type)
        .order_by(failed_runs.desc(), failed_tenants.desc(), parts.c.type)
        .limit(limit)
    ).all()
    labels = _labels([r.type for r in rows], since)
    return [{"type": r.type, "label": labels[r.type], "failed_runs": int(r.runs or 0),
             "failed_tenants": int(r.tenants or 0)} for r in rows]


def _labels(types: list[str], since: datetime) -> dict[str, str]:
    """Display label of each type: its newest run's context label (what the seam stored),
    else the registered operation type's label, else the type. One statement for all of
    them (a lookup on ix_operation_runs_type_created per type), not one per type."""
    ops = current_app.extensions["tenantpilot"].registry.operation_types
    out = {}
    for i in range(0, len(types), 100):  # SQLite caps a compound SELECT at 500 parts
        newest = union_all(*(
            select(literal(t).label("type"), select(OperationRun.context)
                   .where(OperationRun.type == t, OperationRun.created_at >= since)
                   .order_by(OperationRun.created_at.desc()).limit(1).scalar_subquery().label("context"))
            for t in types[i:i + 100]))
        for type_, context in db.session.execute(select(newest.subquery())):
            label = (context or {}).get("operation_label") if isinstance(context, dict) else None
            if not label and type_ in ops:
                label = ops[type_].label
            out[type_] = str(label or type_)
    return out


def top_failing_tenants(since: datetime, limit: int = 5) -> list[dict]:
    """Tenants with the most failed tenant rows in runs created since ``since``. Ids only:
    the dashboard never shows a tenant's name. Each: tenant_id, failed."""
    first_full, (edge, active) = _raw_parts(since)
    f = OperationRunFailedTenantHourly.__table__
    parts = union_all(
        select(f.c.tenant_id, f.c.failed).where(f.c.bucket_start >= first_full),
        # A failed tenant row of the edge hour is either accounted into its run's
        # tenants_failed already or its run is still active: that narrows to failing runs.
        _failed_rows(and_(edge, or_(OperationRun.tenants_failed > 0, OperationRun.status != "completed"))),
        _failed_rows(active),
    ).subquery()
    failed = func.sum(parts.c.failed).label("failed")
    rows = db.session.execute(
        select(parts.c.tenant_id, failed).group_by(parts.c.tenant_id)
        .order_by(failed.desc(), parts.c.tenant_id).limit(limit)
    ).all()
    return [{"tenant_id": r[0], "failed": int(r.failed)} for r in rows]


def _is_failed_run():
    return OperationRun.outcome.in_(FAILED_OUTCOMES)


def _failed_rows(runs_where):
    """(tenant_id, 1) per failed tenant row of the runs matching ``runs_where``."""
    failed_rows = select(OperationRunTenant.tenant_id).where(
        OperationRunTenant.run_id == OperationRun.id, OperationRunTenant.status == "failed")
    if db.session.get_bind().dialect.name == "postgresql":
        # Drive from the runs into (run_id, status). A plain join lets the planner scan
        # every failed tenant row ever recorded once the runs are a few thousand
        # (measured: 110-200 ms at 1.3M rows for 7 days, vs 34 ms this way). OFFSET 0
        # keeps PostgreSQL from flattening the lateral back.
        rows_of_run = failed_rows.offset(0).lateral("failed_rows")
        return (select(rows_of_run.c.tenant_id, literal(1).label("failed"))
                .select_from(OperationRun).join(rows_of_run, true()).where(runs_where))
    # SQLite has no LATERAL; its planner walks the runs index and probes anyway.
    return (select(OperationRunTenant.tenant_id, literal(1).label("failed")).select_from(OperationRun)
            .join(OperationRunTenant, and_(OperationRunTenant.run_id == OperationRun.id,
                                           OperationRunTenant.status == "failed"))
            .where(runs_where))


def recent_failures(since: datetime, limit: int = 10) -> list[dict]:
    """The newest runs created since ``since`` that completed failed or partially
    succeeded, newest first. Windowed by creation like the KPIs (a run created before the
    window is not listed) and ordered by it (the index order), so the scan stops after
    ``limit`` matches instead of sorting every failure of a 30-day window by completion."""
    runs = db.session.scalars(
        select(OperationRun)
        .where(OperationRun.created_at >= since, OperationRun.status == "completed", _is_failed_run())
        .order_by(OperationRun.created_at.desc(), OperationRun.id.desc())
        .limit(limit)
    ).all()
    out = []
    for run in runs:
        first = next((f for f in (run.failure_summary or []) if isinstance(f, dict)), None)
        out.append({
            "id": run.id, "type": run.type, "label": str((run.context or {}).get("operation_label") or run.type),
            "outcome": run.outcome, "tenants_failed": run.tenants_failed, "tenants_total": run.tenants_total,
            "reason_code": safe_reason(first.get("reason_code")) if first else None,
            "completed_at": run.completed_at,
        })
    return out


# --- the same figures from raw rows ---------------------------------------------------
# The queries the dashboard ran before the rollup, kept for the exactness test and the
# benchmark (bench/dashboard.py times both); the dashboard never calls them.

def raw_run_kpis(since: datetime) -> dict:
    """The same as ``run_kpis`` counted over the raw runs (the query before the rollup).
    Runs created since ``since`` by outcome: started, succeeded, failed (incl.
    partially_succeeded), partially_succeeded; plus the runs active right now (active,
    running, queued), not windowed: a run queued last week is still queued now."""
    by_outcome = dict(db.session.execute(
        select(OperationRun.outcome, func.count()).where(OperationRun.created_at >= since)
        .group_by(OperationRun.outcome)
    ).all())
    return _kpis(by_outcome)


def raw_top_failing_types(since: datetime, limit: int = 5) -> list[dict]:
    """The same as ``top_failing_types`` over the raw runs (the query before the rollup).
    Operation types with the most failed runs created since ``since``, ties broken by
    failed tenants (which include tenants failed in still-running runs). Each: type,
    label, failed_runs, failed_tenants."""
    failed_runs = func.sum(case((_is_failed_run(), 1), else_=0))
    failed_tenants = func.coalesce(func.sum(OperationRun.tenants_failed), 0)
    rows = db.session.execute(
        select(OperationRun.type, failed_runs.label("runs"), failed_tenants.label("tenants"))
        .where(OperationRun.created_at >= since, or_(_is_failed_run(), OperationRun.tenants_failed > 0))
        .group_by(OperationRun.type)
        .order_by(failed_runs.desc(), failed_tenants.desc(), OperationRun.type)
        .limit(limit)
    ).all()
    labels = _labels([r.type for r in rows], since)
    return [{"type": r.type, "label": labels[r.type], "failed_runs": int(r.runs or 0),
             "failed_tenants": int(r.tenants or 0)} for r in rows]


def raw_top_failing_tenants(since: datetime, limit: int = 5) -> list[dict]:
    """The same as ``top_failing_tenants`` over the raw rows (the query before the rollup).
    Tenants with the most failed tenant rows in runs created since ``since``. Ids only:
    the dashboard never shows a tenant's name. Each: tenant_id, failed."""
    # Exact, and it narrows the window to its failing runs: a failed tenant row is either
    # accounted into its run's tenants_failed already or its run is still active.
    failing_runs = (OperationRun.created_at >= since,
                    or_(OperationRun.tenants_failed > 0, OperationRun.status != "completed"))
    failed_rows = select(OperationRunTenant.tenant_id).where(
        OperationRunTenant.run_id == OperationRun.id, OperationRunTenant.status == "failed")
    if db.session.get_bind().dialect.name == "postgresql":
        # Drive from the window's runs into (run_id, status). A plain join lets the planner
        # scan every failed tenant row ever recorded once a window holds a few thousand
        # runs (measured: 110-200 ms at 1.3M rows for 7 days, growing with the ledger, vs
        # 34 ms this way). OFFSET 0 keeps PostgreSQL from flattening the lateral back.
        rows_of_run = failed_rows.offset(0).lateral("failed_rows")
        tenant_id = rows_of_run.c.tenant_id
        base = select(OperationRun).join(rows_of_run, true())
    else:  # SQLite has no LATERAL; its planner walks the runs index and probes anyway
        tenant_id = OperationRunTenant.tenant_id
        base = select(OperationRun).join(OperationRunTenant, and_(
            OperationRunTenant.run_id == OperationRun.id, OperationRunTenant.status == "failed"))
    failed = func.count().label("failed")
    rows = db.session.execute(
        base.with_only_columns(tenant_id, failed).where(*failing_runs)
        .group_by(tenant_id).order_by(failed.desc(), tenant_id).limit(limit)
    ).all()
    return [{"tenant_id": r[0], "failed": int(r.failed)} for r in rows]


# --- health -------------------------------------------------------------------------


def stale_runs(now: datetime, minutes: int) -> dict:
    """Runs stuck for more than ``minutes``: queued since before the cutoff, or running
    with no tenant started or finished since the cutoff (and the run itself older)."""
    cutoff = now - timedelta(minutes=minutes)
    queued, oldest = db.session.execute(
        select(func.count(), func.min(OperationRun.created_at))
        .where(OperationRun.status == "queued", OperationRun.created_at < cutoff)
    ).one()
    recent_progress = exists().where(
        OperationRunTenant.run_id == OperationRun.id,
        or_(OperationRunTenant.started_at >= cutoff, OperationRunTenant.finished_at >= cutoff))
    running = db.session.scalar(
        select(func.count()).select_from(OperationRun)
        .where(OperationRun.status == "running", OperationRun.created_at < cutoff,
               func.coalesce(OperationRun.started_at, OperationRun.created_at) < cutoff, ~recent_progress)
    )
    return {"queued": queued or 0, "running": running or 0, "oldest_queued_at": oldest, "minutes": minutes}


def active_pauses(now: datetime) -> list[dict]:
    """Operational-control pauses in force (not expired), newest first."""
    controls = current_app.extensions["tenantpilot"].registry.control_keys
    rows = db.session.scalars(
        select(OperationalControlActivation)
        .where(or_(OperationalControlActivation.expires_at.is_(None), OperationalControlActivation.expires_at > now))
        .order_by(OperationalControlActivation.id.desc())
    ).all()
    return [{"control_key": r.control_key,
             "label": controls[r.control_key].label if r.control_key in controls else r.control_key,
             "scope_type": r.scope_type, "workspace_id": r.workspace_id, "expires_at": r.expires_at}
            for r in rows]


def queue_health(app, now: datetime) -> dict:
    """Workers alive and, per queue, its depth and the age of its oldest queued job.
    Reads Redis only; ``error`` is set (and the numbers empty) when it is unreachable."""
    state = app.extensions["tenantpilot"]
    try:
        queues = all_queues(app)
        workers = {}
        for q in queues:
            for w in Worker.all(queue=q):
                workers[w.name] = w
        rows = []
        for q in queues:
            depth = q.count
            oldest = None
            head = q.get_job_ids(0, 1)  # workers pop from the left: the head waited longest
            if head:
                try:
                    # Job.fetch, not Queue.fetch_job: that one removes a vanished id from the queue.
                    enqueued_at = Job.fetch(head[0], connection=q.connection).enqueued_at
                except NoSuchJobError:
                    enqueued_at = None
                if enqueued_at is not None:
                    oldest = max(0, int((now - enqueued_at.replace(tzinfo=None)).total_seconds()))
            rows.append({"name": q.name, "depth": depth, "oldest_age_seconds": oldest})
    except redis.RedisError as exc:
        log.warning("dashboard: queue health unavailable: %s", type(exc).__name__)
        return {"error": "The job queue (Redis) could not be reached.", "workers": None, "queues": [],
                "embedded_on_demand": False}
    # Embedded mode starts its worker thread on the first enqueue; none yet is not an outage.
    on_demand = (state.embedded and app.config.get("TENANTPILOT_EMBEDDED_WORKER")
                 and not (state.worker_thread and state.worker_thread.is_alive()))
    return {"error": None, "workers": len(workers), "queues": rows, "embedded_on_demand": bool(on_demand)}


def health(app, now: datetime) -> dict:
    """Queue health, stale runs and active pauses, each with an ok / warn / bad badge."""
    stale_minutes = int(app.config["TENANTPILOT_STALE_QUEUED_MINUTES"])
    queues = queue_health(app, now)
    stale = stale_runs(now, stale_minutes)
    pauses = active_pauses(now)
    depth = sum(q["depth"] for q in queues["queues"])
    for q in queues["queues"]:
        age = q["oldest_age_seconds"]
        q["badge"] = ("ok" if age is None or age < 60
                      else "warn" if age < stale_minutes * 60 else "bad")
    if queues["error"]:
        workers_badge = "bad"
    elif queues["workers"] or queues["embedded_on_demand"]:
        workers_badge = "ok"
    else:
        workers_badge = "bad" if depth else "warn"
    oldest = max((q["oldest_age_seconds"] for q in queues["queues"] if q["oldest_age_seconds"] is not None),
                 default=None)
    return {
        "queues": queues,
        "workers_badge": workers_badge,
        "depth": depth,
        "depth_badge": "bad" if queues["error"] else ("ok" if not depth or queues["workers"] else "warn"),
        "oldest_age_seconds": oldest,
        "oldest_badge": "bad" if queues["error"] else (
            "ok" if oldest is None or oldest < 60 else "warn" if oldest < stale_minutes * 60 else "bad"),
        "stale": stale,
        "stale_badge": "bad" if stale["queued"] else ("warn" if stale["running"] else "ok"),
        "pauses": pauses,
        "pauses_badge": "warn" if pauses else "ok",
    }
