"""RQ job functions. They take ids, run in an app context (AppWorker), and report
through the ledger so counts stay exact whoever runs them."""
from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

from flask import current_app
from rq.exceptions import AbandonedJobError
from rq.timeouts import BaseTimeoutException
from sqlalchemy import select, update

from . import runs
from .api import TenantJob, TenantJobError
from .extensions import db
from .models import OperationRun, OperationRunTenant, Tenant
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.jobs")
MAX_CONTINUATIONS = 3


# Fold settled tenants into the run row (progress, counts, circuit breaker) at most every
# half second, or sooner after many tenants or a run of failures.
ACCOUNT_SECONDS = 0.5
ACCOUNT_TENANTS = 50
ACCOUNT_FAILURES = 10
# A group that took longer than this means big tenants, which gain nothing from grouping:
# the rest of the batch runs one tenant per group, so a cancel is not held up by a
# claimed group of big tenants.
GROUP_SLOW_SECONDS = 1.0


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
    group_size = _group_size(op)
    if group_size > 1:
        return _run_groups(op, run_id, run_type, tenant_ids, workspaces, context, group_size)
    done = since_account = failures = 0
    last_account = time.monotonic()
    i, n = 0, len(tenant_ids)
    while i < n:
        if not runs.claim_tenant(run_id, tenant_ids[i]):  # taken, settled or cancelled
            i += 1
            continue
        # Work through a chain of claimed tenants: each commit settles one and claims the next.
        while i < n:
            tenant_id, i = tenant_ids[i], i + 1
            claim_next = tenant_ids[i] if i < n else None
            next_claimed, ok = _execute_one(op, run_id, run_type, tenant_id, workspaces.get(tenant_id), context,
                                            claim_next)
            done += 1
            since_account += 1
            failures += not ok
            if (since_account >= ACCOUNT_TENANTS or failures >= ACCOUNT_FAILURES
                    or time.monotonic() - last_account >= ACCOUNT_SECONDS):
                runs.account(run_id)
                since_account = failures = 0
                last_account = time.monotonic()
            if not next_claimed:
                break
    runs.account(run_id)
    return {"tenants": done}


def _group_size(op) -> int:
    """Tenants per transaction: a group for an operation type with a group executor, on
    a job's first dispatch. A continuation (the rest of a batch whose worker died) runs
    one tenant at a time, so a tenant that kills its worker again fails alone."""
    if op is None or op.execute_tenants is None:
        return 1
    from rq import get_current_job

    job = get_current_job()
    if job is not None and int((job.meta or {}).get("continuation", 0)):
        return 1
    return max(1, int(current_app.config["TENANTPILOT_FANOUT_GROUP_SIZE"]))


def _run_groups(op, run_id, run_type, tenant_ids, workspaces, context, size) -> dict:
    """The batch in groups of ``size`` tenants: one claim, one executor call and one
    commit per group (which also claims the next group). Each tenant keeps its own result
    row; a cancel is observed between groups; accounting as for single tenants. After a
    group slower than GROUP_SLOW_SECONDS, the rest goes one tenant per group."""
    done = since_account = failures = 0
    last_account = time.monotonic()
    pos, n = 0, len(tenant_ids)
    claimed: list[int] = []
    while claimed or pos < n:
        if not claimed:  # start a chain (first group, or after a group found nothing to claim)
            claimed = runs.claim_tenants(run_id, tenant_ids[pos:pos + size])
            pos += size
            continue
        nxt = tenant_ids[pos:pos + size]
        pos += size
        group = claimed
        started = time.monotonic()
        claimed, failed = _execute_group(op, run_id, run_type, group, workspaces, context, nxt)
        if time.monotonic() - started > GROUP_SLOW_SECONDS:
            size = 1
        done += len(group)
        since_account += len(group)
        failures += failed
        if (claimed or pos < n) and (  # else the final account() below does it
                since_account >= ACCOUNT_TENANTS or failures >= ACCOUNT_FAILURES
                or time.monotonic() - last_account >= ACCOUNT_SECONDS):
            runs.account(run_id)
            since_account = failures = 0
            last_account = time.monotonic()
    runs.account(run_id)
    return {"tenants": done}


def _execute_group(op, run_id, run_type, group, workspaces, context, claim_next) -> tuple[list[int], int]:
    """Run a claimed group with the group executor and settle it, claiming ``claim_next``
    in the same commit. If the executor raises (or returns bad counts), its writes are
    rolled back and the group's tenants run one by one with execute_tenant, so only the
    failing tenant fails. Returns (next group's claimed tenants, tenants failed)."""
    jobs = [TenantJob(run_id=run_id, tenant_id=t, workspace_id=workspaces.get(t), operation_type=run_type,
                      context=context) for t in group]
    try:
        results = op.execute_tenants(jobs)
        counts = {j.tenant_id: runs.validate_counts(op, results[j.tenant_id]) for j in jobs}
    except BaseTimeoutException:
        db.session.rollback()
        raise  # the failure callback releases the group; a continuation runs it tenant by tenant
    except Exception as exc:
        db.session.rollback()
        log.warning("group of %s tenants of run %s failed (%s); running them one by one",
                    len(group), run_id, type(exc).__name__)
        counts = None
    if counts is None:  # outside the except block: each tenant's own error is logged on its own
        failed = 0
        for tenant_id in group:
            failed += not _execute_one(op, run_id, run_type, tenant_id, workspaces.get(tenant_id), context, None)[1]
        return runs.claim_tenants(run_id, claim_next), failed
    finished, next_claimed = runs.finish_tenants(run_id, counts, claim_next=claim_next)
    if finished:
        for job in jobs:
            _run_effects(job)
        return next_claimed, 0
    # Someone (the reaper) settled or released the group meanwhile: our writes were
    # discarded; carry on with the next group.
    return runs.claim_tenants(run_id, claim_next), 0


def _execute_one(op, run_id, run_type, tenant_id, workspace_id, context, claim_next) -> tuple[bool, bool]:
    """Run one claimed tenant; returns (claim_next was claimed in its commit, succeeded)."""
    if op is None:
        return runs.finish_tenant(run_id, tenant_id, status="failed", reason_code="unknown_operation_type",
                                  message="No installed plugin provides this operation type.",
                                  claim_next=claim_next)[1], False
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
        claimed = runs.finish_tenant(run_id, tenant_id, status="succeeded", counts=counts, claim_next=claim_next)[1]
        _run_effects(job)
        return claimed, True
    return result[1], False


def _run_effects(job: TenantJob) -> None:
    """The executor's after-commit effects (TenantJob.after_commit), once its writes and
    the tenant's result are committed. One failing effect neither fails the tenant nor
    keeps the others from running."""
    for fn in job.effects:
        try:
            fn()
        except Exception:
            db.session.rollback()
            log.exception("after-commit effect of tenant %s of run %s failed", job.tenant_id, job.run_id)


def handle_batch_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback: the batch job died (timeout, crash, or a killed worker found
    abandoned by the reaper). The tenant it was running fails; the rest are re-dispatched."""
    run_id, tenant_ids = job.args
    if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
        reason, message = "worker_lost", WORKER_LOST
    elif exc_type and issubclass(exc_type, BaseTimeoutException):
        reason, message = "timeout", "The tenant job exceeded its time limit."
    else:
        reason, message = "job_failed", "The tenant job failed unexpectedly."
    db.session.rollback()
    recover_batch(run_id, job.id, tenant_ids, reason, message, int((job.meta or {}).get("continuation", 0)))


WORKER_LOST = "The worker running this tenant stopped unexpectedly."


def recover_batch(run_id: int, job_id: str, tenant_ids: list[int], reason: str, message: str,
                  continuation: int) -> None:
    """A batch job is gone: its running tenant fails; its pending tenants go to a new job
    (at most MAX_CONTINUATIONS times, then they fail too). A job that died running a group
    (several tenants running at once, whose work rolled back with the transaction) cannot
    tell which tenant killed it: the group goes back to pending, and the continuation runs
    it one tenant at a time."""
    if len(runs.running_tenants(run_id, tenant_ids)) > 1:
        runs.release_running(run_id, tenant_ids)
    runs.settle(run_id, tenant_ids, from_statuses=("running",), to_status="failed",
                reason_code=reason, message=message)
    mine = [t for t in runs.batches(run_id).get(job_id, []) if t in set(tenant_ids)]
    if not mine:
        return
    continuation += 1
    if continuation > MAX_CONTINUATIONS:
        runs.settle(run_id, mine, from_statuses=("pending",), to_status="failed",
                    reason_code=reason, message=message)
        return
    from .queue import enqueue_batches

    new_id = f"{split_continuation(job_id)[0]}-c{continuation}"
    # A new job id per continuation, so cancel and the orphan sweep find the job that owns these rows.
    db.session.execute(
        update(OperationRunTenant)
        .where(OperationRunTenant.run_id == run_id, OperationRunTenant.tenant_id.in_(mine))
        .values(job_id=new_id)
    )
    db.session.commit()
    enqueue_batches(run_id, {new_id: mine}, continuation=continuation)


ALIVE = {"queued", "started", "scheduled", "deferred"}
_CONTINUATION = re.compile(r"^(.*)-c(\d+)$")


def split_continuation(job_id: str) -> tuple[str, int]:
    """'<batch job id>-c2' → ('<batch job id>', 2); a first job → (job_id, 0)."""
    m = _CONTINUATION.match(job_id)
    return (m.group(1), int(m.group(2))) if m else (job_id, 0)


def recover_orphaned_runs(min_age_seconds: int = 120) -> int:
    """Unsettled tenants of an active run whose RQ job is gone or already ended (a
    PostgreSQL outage mid-job, a lost asynchronous commit, a failure callback that could
    not reach the database) are recovered like an abandoned batch. Returns batches recovered."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    state = current_app.extensions["tenantpilot"]
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)  # not the enqueue of a just-created run
    rows = db.session.execute(
        select(OperationRunTenant.run_id, OperationRunTenant.job_id, OperationRunTenant.tenant_id)
        .join(OperationRun, OperationRun.id == OperationRunTenant.run_id)
        .where(OperationRun.status.in_(("queued", "running")), OperationRun.created_at < cutoff,
               OperationRunTenant.status.in_(("pending", "running")))
    ).all()
    db.session.commit()
    batches: dict[tuple[int, str], list[int]] = {}
    for run_id, job_id, tenant_id in rows:
        batches.setdefault((run_id, job_id), []).append(tenant_id)
    recovered = 0
    for (run_id, job_id), tenant_ids in batches.items():
        try:
            status = Job.fetch(job_id, connection=state.redis).get_status()
            status = getattr(status, "value", status)
        except NoSuchJobError:
            status = None
        if status in ALIVE:
            continue
        continuation = split_continuation(job_id)[1]
        log.warning("recovering orphaned batch", extra={"run_id": run_id, "job_id": job_id, "rq_status": status})
        recover_batch(run_id, job_id, tenant_ids, "worker_lost", WORKER_LOST, continuation)
        recovered += 1
    return recovered


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
    return len(swept) + recover_orphaned_runs(current_app.config["TENANTPILOT_ORPHAN_MIN_AGE"])
