"""RQ job functions. They take ids, run in an app context (AppWorker), and report
through the ledger so counts stay exact whoever runs them."""
from __future__ import annotations

import logging

from flask import current_app
from rq.exceptions import AbandonedJobError
from rq.timeouts import BaseTimeoutException
from sqlalchemy import select, update

from . import runs
from .api import TenantJob, TenantJobError
from .extensions import db
from .models import OperationRun, OperationRunTenant, Tenant

log = logging.getLogger("tenantpilot.jobs")
MAX_CONTINUATIONS = 3


ACCOUNT_EVERY = 10  # tenants between progress updates of the run row


def run_tenant_batch(run_id: int, tenant_ids: list[int]) -> dict:
    """Execute one batch: each tenant in its own transaction with its own result row;
    the run's counters are updated every ACCOUNT_EVERY tenants and at the end."""
    state = current_app.extensions["tenantpilot"]
    run = db.session.get(OperationRun, run_id)
    if run is None:
        return {"skipped": "run not found"}
    op = state.registry.operation_types.get(run.type)
    context = dict(run.context or {})
    run_type = run.type
    workspaces = dict(
        db.session.execute(select(Tenant.id, Tenant.workspace_id).where(Tenant.id.in_(tenant_ids))).all()
    )
    runs.mark_running(run_id)
    done = since_account = 0
    i, n = 0, len(tenant_ids)
    while i < n:
        if not runs.claim_tenant(run_id, tenant_ids[i]):  # taken, settled or cancelled
            i += 1
            continue
        # Work through a chain of claimed tenants: each commit settles one and claims the next.
        while i < n:
            tenant_id, i = tenant_ids[i], i + 1
            claim_next = tenant_ids[i] if i < n else None
            next_claimed = _execute_one(op, run_id, run_type, tenant_id, workspaces.get(tenant_id), context,
                                        claim_next)
            done += 1
            since_account += 1
            if since_account >= ACCOUNT_EVERY:
                runs.account(run_id)
                since_account = 0
            if not next_claimed:
                break
    runs.account(run_id)
    return {"tenants": done}


def _execute_one(op, run_id, run_type, tenant_id, workspace_id, context, claim_next) -> bool:
    """Run one claimed tenant; returns whether claim_next was claimed in its commit."""
    if op is None:
        return runs.finish_tenant(run_id, tenant_id, status="failed", reason_code="unknown_operation_type",
                                  message="No installed plugin provides this operation type.",
                                  claim_next=claim_next)[1]
    job = TenantJob(run_id=run_id, tenant_id=tenant_id, workspace_id=workspace_id, operation_type=run_type,
                    context=context)
    try:
        counts = runs.validate_counts(op, op.execute_tenant(job))
    except BaseTimeoutException:
        db.session.rollback()
        raise  # the failure callback settles this tenant and re-dispatches the rest
    except TenantJobError as exc:
        db.session.rollback()
        result = runs.finish_tenant(run_id, tenant_id, status="failed", reason_code=exc.reason_code,
                                    message=exc.message, claim_next=claim_next)
    except Exception as exc:
        db.session.rollback()
        log.exception("tenant %s of run %s failed", tenant_id, run_id)
        result = runs.finish_tenant(run_id, tenant_id, status="failed", reason_code="unexpected_error",
                                    message=f"Unexpected error ({type(exc).__name__}).", claim_next=claim_next)
    else:
        result = runs.finish_tenant(run_id, tenant_id, status="succeeded", counts=counts, claim_next=claim_next)
    return result[1]


def handle_batch_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback: the batch job died (timeout, crash, or a killed worker found
    abandoned by the reaper). The tenant it was running fails; the rest are re-dispatched."""
    run_id, tenant_ids = job.args
    if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
        reason, message = "worker_lost", "The worker running this tenant stopped unexpectedly."
    elif exc_type and issubclass(exc_type, BaseTimeoutException):
        reason, message = "timeout", "The tenant job exceeded its time limit."
    else:
        reason, message = "job_failed", "The tenant job failed unexpectedly."
    db.session.rollback()
    runs.settle(run_id, tenant_ids, from_statuses=("running",), to_status="failed",
                reason_code=reason, message=message)
    remaining = runs.batches(run_id)
    mine = [t for t in remaining.get(job.id, []) if t in set(tenant_ids)]
    if not mine:
        return
    continuation = int((job.meta or {}).get("continuation", 0)) + 1
    if continuation > MAX_CONTINUATIONS:
        runs.settle(run_id, mine, from_statuses=("pending",), to_status="failed",
                    reason_code=reason, message=message)
        return
    from .queue import enqueue_batches

    # A new job id per continuation, so cancel finds the job that now owns these rows.
    db.session.execute(
        update(OperationRunTenant)
        .where(OperationRunTenant.run_id == run_id, OperationRunTenant.tenant_id.in_(mine))
        .values(job_id=f"{job.id}-c{continuation}")
    )
    db.session.commit()
    enqueue_batches(run_id, {f"{job.id}-c{continuation}": mine}, continuation=continuation)


def reap_abandoned_jobs() -> int:
    """Let RQ find started jobs whose worker vanished (their failure callbacks settle the
    tenants), then account rows a dead worker settled but never accounted. Returns how
    many runs were swept."""
    from .queue import all_queues

    for q in all_queues():
        q.started_job_registry.cleanup()
    swept = runs.unaccounted_runs()
    for run_id in swept:
        runs.account(run_id)
    return len(swept)
