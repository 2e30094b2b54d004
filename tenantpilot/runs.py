"""The operation-run ledger (SPEC 2): the only code that writes run status.

Concurrency rules, so counts are exact and a run completes exactly once:
- every write transaction first locks the run row (``_lock_run``: a no-op UPDATE, which
  is a row lock on PostgreSQL and the write lock on SQLite), then touches tenant rows;
  one lock order everywhere means no deadlocks between claim, finish and cancel;
- a tenant row moves ``pending → running → succeeded|failed`` (or ``pending →
  cancelled``) with conditional UPDATEs, so each tenant is accounted once;
- the transaction that brings ``tenants_done`` to ``tenants_total`` completes the run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import bindparam, insert, or_, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.attributes import set_committed_value

from .extensions import db
from .models import _ACTIVE_SQL, OperationRun, OperationRunTenant, Tenant
from .sanitize import safe_message, safe_reason
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.runs")
MAX_FAILURES_KEPT = 100
RESERVED_KEYS = frozenset({"failed", "tenants"})  # the ledger owns these two


@dataclass(frozen=True)
class Scope:
    kind: str  # all_tenants | workspace | single_tenant
    workspace_id: int | None = None
    tenant_id: int | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "workspace_id": self.workspace_id, "tenant_id": self.tenant_id}

    @property
    def lock_key(self) -> str | None:
        return "all_tenants" if self.kind == "all_tenants" else None


def identity_hash(operation_type: str, scope: Scope, inputs: dict | None) -> str:
    payload = json.dumps([operation_type, scope.as_dict(), inputs or {}], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def tenant_universe(scope: Scope, single_tenant_statuses: tuple[str, ...] = ("active",)):
    """Active, non-platform tenants in a scope, as (tenant_id, workspace_id) rows. A
    single-tenant scope may also admit the statuses its operation type allows."""
    statuses = single_tenant_statuses if scope.kind == "single_tenant" else ("active",)
    q = select(Tenant.id, Tenant.workspace_id).where(Tenant.status.in_(statuses), Tenant.is_platform.is_(False))
    if scope.kind == "workspace":
        q = q.where(Tenant.workspace_id == scope.workspace_id)
    elif scope.kind == "single_tenant":
        q = q.where(Tenant.id == scope.tenant_id)
    return db.session.execute(q.order_by(Tenant.id)).all()


def job_id_for(run_id: int, batch_index: int) -> str:
    return f"{current_app.config['TENANTPILOT_QUEUE_PREFIX']}-run-{run_id}-{batch_index}"


def create(
    *,
    operation_type: str,
    scope: Scope,
    identity_inputs: dict | None,
    tenants: list,  # (tenant_id, workspace_id) rows
    skipped: dict | None = None,  # tenant_id -> reason code: settled as skipped at creation
    initiator,
    context: dict,
    batch_size: int,
    parent_run_id: int | None = None,
    attach=None,
) -> tuple[OperationRun, str, dict[str, list[int]]]:
    """Insert a run and its tenant rows; return (run, 'created'|'deduped'|'scope_busy',
    the new run's pending tenant ids by job id — ``batches()`` without reading them back).

    The partial unique indexes decide races: the loser of two concurrent inserts gets the
    winner's run back, never a second run. ``attach(run)`` (optional) adds domain rows in
    the same transaction, so they exist exactly when the run does.

    Round trips (the start seam's hot path): one SELECT for an active conflict, the run
    INSERT (RETURNING its id), one INSERT of the tenant rows, the commit. The counters are
    final before the run row is inserted (no follow-up UPDATE), and the run keeps the
    values it was written with after the commit (no refresh SELECT)."""
    ident = identity_hash(operation_type, scope, identity_inputs)
    lock = f"{operation_type}:{scope.lock_key}" if scope.lock_key else None
    skipped = skipped or {}
    todo = [t for t in tenants if t[0] not in skipped]
    n_skipped = len(tenants) - len(todo)
    for attempt in range(8):
        existing = _active_conflict(ident, lock)
        if existing:
            return (*existing, {})
        run = OperationRun(
            type=operation_type,
            workspace_id=scope.workspace_id,
            tenant_id=scope.tenant_id,
            status="queued",
            outcome="pending",
            initiator_user_id=initiator.id if initiator.kind == "human" else None,
            initiator_platform_user_id=initiator.id if initiator.kind == "platform" else None,
            initiator_name=initiator.name if initiator.kind != "system" else None,
            run_identity_hash=ident,
            scope_lock=lock,
            summary_counts={"tenants": n_skipped, "failed": 0},
            failure_summary=[],
            context=context,
            tenants_total=len(tenants),
            tenants_done=n_skipped,
            tenants_skipped=n_skipped,
            parent_run_id=parent_run_id,
        )
        try:
            db.session.add(run)
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            continue
        except OperationalError as exc:
            # SQLite (embedded mode) refuses to upgrade a read transaction after another
            # writer committed; the retry re-reads and finds the winner's run.
            db.session.rollback()
            if db.engine.dialect.name != "sqlite" or "locked" not in str(exc):
                raise
            time.sleep(0.05 * (attempt + 1))  # let the winner commit
            continue
        pending: dict[str, list[int]] = {}
        rows = []
        # Every row carries the same keys: a Core executemany takes its columns from the first.
        for i, (tid, _ws) in enumerate(todo):
            job_id = job_id_for(run.id, i // batch_size)
            pending.setdefault(job_id, []).append(tid)
            rows.append({"run_id": run.id, "tenant_id": tid, "status": "pending", "job_id": job_id, "counts": {},
                         "reason_code": None, "finished_at": None, "accounted": False})
        now = utcnow()
        rows += [
            {"run_id": run.id, "tenant_id": tid, "status": "skipped", "job_id": None, "counts": {},
             "reason_code": skipped[tid], "finished_at": now, "accounted": True}
            for tid, _ws in tenants if tid in skipped
        ]
        if rows:
            db.session.execute(insert(_RT), rows)  # Core: the ORM bulk path cost more than the round trip
        if attach is not None:
            try:
                attach(run)
            except Exception:
                db.session.rollback()  # neither the run nor its domain rows
                raise
        if not todo:  # nothing to dispatch: complete right away
            _mark_completed(run)
        _commit_keeping(run)
        if run.status == "completed":
            _after_completion(run.id)
        return run, "created", {job: sorted(tids) for job, tids in pending.items()}
    raise RuntimeError("could not create or find the active run")  # pragma: no cover


def _commit_keeping(obj) -> None:
    """Commit, and keep ``obj``'s column values as they were written instead of letting
    the commit expire them: its next attribute read would otherwise re-SELECT the row
    this transaction just inserted (a round trip on the start seam's hot path). Every
    column is known after the flush (ids from RETURNING, defaults computed in Python)."""
    state = sa_inspect(obj)
    db.session.flush()
    written = {attr.key: state.dict[attr.key] for attr in state.mapper.column_attrs if attr.key in state.dict}
    db.session.commit()
    for key, value in written.items():
        set_committed_value(obj, key, value)


_CONFLICT = select(OperationRun.__table__.c.id, OperationRun.__table__.c.run_identity_hash).where(text(_ACTIVE_SQL))


def _active_conflict(ident: str, lock: str | None):
    """The active run holding this identity (deduped) or this scope lock (scope_busy).
    One statement, so a run committed meanwhile is classified consistently."""
    match = OperationRun.run_identity_hash == ident
    if lock:
        match = or_(match, OperationRun.scope_lock == lock)
    # The statuses as literal SQL, the partial unique indexes' own predicate: with bound
    # values, the generic plan of the prepared statement cannot prove the predicate and
    # scans every active run instead (measured: 0.87 ms with 1,700 queued runs).
    # Ids first (Core): the miss is the hot path and needs no ORM object.
    found = db.session.execute(_CONFLICT.where(match)).all()
    if not found:
        return None
    run_id, kind = next(((i, "deduped") for i, h in found if h == ident), (found[0][0], "scope_busy"))
    return db.session.get(OperationRun, run_id), kind


def batches(run_id: int) -> dict[str, list[int]]:
    """Pending tenant ids grouped by the job that owns them."""
    out: dict[str, list[int]] = {}
    for job_id, tid in db.session.execute(
        select(OperationRunTenant.job_id, OperationRunTenant.tenant_id)
        .where(OperationRunTenant.run_id == run_id, OperationRunTenant.status == "pending")
        .order_by(OperationRunTenant.tenant_id)
    ):
        out.setdefault(job_id, []).append(tid)
    return out


def _lock_run(run_id: int) -> None:
    db.session.execute(update(OperationRun).where(OperationRun.id == run_id).values(id=OperationRun.id))


def mark_running(run_id: int) -> None:
    """queued → running (the first batch to start does it)."""
    now = utcnow()
    db.session.execute(
        update(OperationRun).where(OperationRun.id == run_id, OperationRun.status == "queued")
        .values(status="running", started_at=now)
    )
    db.session.commit()


# The hot per-tenant statements go through the Core table: the ORM-enabled UPDATE path
# costs more than the database round trip itself (measured: ~40% of a no-op tenant).
_RT = OperationRunTenant.__table__

# Built once, executed with per-tenant parameters: constructing the statement each time
# cost more than executing it.
_CLAIM = (
    update(_RT)
    .where(_RT.c.run_id == bindparam("b_run"), _RT.c.tenant_id == bindparam("b_tenant"), _RT.c.status == "pending")
    .values(status="running", started_at=bindparam("b_now"))
)
_SETTLE_ONE = (
    update(_RT)
    .where(_RT.c.run_id == bindparam("b_run"), _RT.c.tenant_id == bindparam("b_tenant"), _RT.c.status == "running")
    .values(status=bindparam("b_status"), counts=bindparam("b_counts", type_=_RT.c.counts.type),
            finished_at=bindparam("b_now"), reason_code=bindparam("b_reason"), message=bindparam("b_message"))
)


def claim_tenant(run_id: int, tenant_id: int) -> bool:
    """pending → running, committed before the tenant's work starts, so a worker that dies
    mid-tenant leaves exactly that tenant 'running'. False if already taken or cancelled."""
    claimed = _claim(run_id, tenant_id)
    db.session.commit()
    return claimed


def _claim(run_id: int, tenant_id: int) -> bool:
    res = db.session.connection().execute(_CLAIM, {"b_run": run_id, "b_tenant": tenant_id, "b_now": utcnow()})
    return res.rowcount == 1


def finish_tenant(run_id: int, tenant_id: int, *, status: str, counts: dict | None = None,
                  reason_code: str | None = None, message: str | None = None,
                  claim_next: int | None = None) -> tuple[bool, bool]:
    """running → succeeded|failed in the caller's transaction (with its domain writes) and,
    in the same commit, claim the batch's next tenant (one commit per tenant instead of
    two). Touches only tenant rows: the run's counters follow in account().
    Returns (finished, next_claimed)."""
    settled = db.session.connection().execute(_SETTLE_ONE, {
        "b_run": run_id, "b_tenant": tenant_id, "b_status": status, "b_counts": counts or {}, "b_now": utcnow(),
        "b_reason": safe_reason(reason_code) if reason_code else None,
        "b_message": safe_message(message) if message else None}).rowcount
    if not settled:
        db.session.rollback()  # someone (the reaper) settled it already: discard our writes
        return False, False
    next_claimed = claim_next is not None and _claim(run_id, claim_next)
    db.session.commit()
    return True, next_claimed


# A group of tenants (an operation type with ``execute_tenants``): claimed in one
# statement, settled with one executemany, so a group of small tenants costs a few round
# trips instead of a few per tenant. Each tenant still has its own result row.
_CLAIM_MANY = (
    update(_RT)
    .where(_RT.c.run_id == bindparam("b_run"), _RT.c.tenant_id.in_(bindparam("b_tenants", expanding=True)),
           _RT.c.status == "pending")
    .values(status="running", started_at=bindparam("b_now"))
    .returning(_RT.c.tenant_id)
)


def claim_tenants(run_id: int, tenant_ids: list[int], *, commit: bool = True) -> list[int]:
    """pending → running for several tenants at once; returns those claimed, in the given
    order (the others were taken, settled or cancelled)."""
    if not tenant_ids:
        return []
    got = set(db.session.connection().execute(
        _CLAIM_MANY, {"b_run": run_id, "b_tenants": list(tenant_ids), "b_now": utcnow()}).scalars())
    if commit:
        db.session.commit()
    return [t for t in tenant_ids if t in got]


def finish_tenants(run_id: int, counts: dict[int, dict], *, claim_next: list[int] | None = None
                   ) -> tuple[bool, list[int]]:
    """running → succeeded for a group, in the caller's transaction (with the group's
    domain writes), each tenant its own result row with its own counts; in the same
    commit, claim the next group. All or nothing: if any of the rows is no longer running
    (the reaper settled or released it), the whole group's writes are discarded.
    Returns (finished, next claimed)."""
    now = utcnow()
    settled = db.session.connection().execute(_SETTLE_ONE, [
        {"b_run": run_id, "b_tenant": tenant_id, "b_status": "succeeded", "b_counts": c or {}, "b_now": now,
         "b_reason": None, "b_message": None} for tenant_id, c in counts.items()]).rowcount
    if settled != len(counts):
        db.session.rollback()
        return False, []
    next_claimed = claim_tenants(run_id, claim_next, commit=False) if claim_next else []
    db.session.commit()
    return True, next_claimed


def release_running(run_id: int, tenant_ids: list[int]) -> list[int]:
    """running → pending for tenants whose transaction died with their worker (their
    work was rolled back with it), so they can be dispatched again. Returns them."""
    _lock_run(run_id)
    released = list(db.session.connection().execute(
        update(_RT).where(_RT.c.run_id == run_id, _RT.c.tenant_id.in_(tenant_ids), _RT.c.status == "running")
        .values(status="pending", started_at=None).returning(_RT.c.tenant_id)).scalars())
    db.session.commit()
    return released


def running_tenants(run_id: int, tenant_ids: list[int]) -> list[int]:
    return list(db.session.scalars(
        select(OperationRunTenant.tenant_id).where(OperationRunTenant.run_id == run_id,
                                                   OperationRunTenant.tenant_id.in_(tenant_ids),
                                                   OperationRunTenant.status == "running")))


def _transition(run_id, tenant_ids, from_statuses, to_status, counts=None, reason_code=None, message=None) -> int:
    stmt = (
        update(_RT)
        .where(_RT.c.run_id == run_id, _RT.c.status.in_(from_statuses))
        .values(status=to_status, counts=counts or {}, finished_at=utcnow(),
                reason_code=safe_reason(reason_code) if reason_code else None,
                message=safe_message(message) if message else None)
    )
    if tenant_ids is not None:
        if not tenant_ids:
            return 0
        stmt = stmt.where(_RT.c.tenant_id.in_(tenant_ids) if len(tenant_ids) > 1 else _RT.c.tenant_id == tenant_ids[0])
    return db.session.connection().execute(stmt).rowcount


def settle(run_id: int, tenant_ids: list[int] | None, *, from_statuses: tuple, to_status: str,
           reason_code: str | None = None, message: str | None = None) -> bool:
    """Bulk transition (cancel, abort, abandoned job) and accounting in one transaction.
    True if this completed the run."""
    _lock_run(run_id)
    _transition(run_id, tenant_ids, from_statuses, to_status, None, reason_code, message)
    return _account_locked(run_id)


def account(run_id: int) -> bool:
    """Fold settled, not yet accounted tenant rows into the run's counters; complete the
    run when every tenant is accounted. Safe to call from anywhere, any number of times:
    each row is accounted once, under the run-row lock. True if this completed the run."""
    _lock_run(run_id)
    return _account_locked(run_id)


SETTLED = ("succeeded", "failed", "skipped", "cancelled")


def _account_locked(run_id: int) -> bool:
    rows = db.session.execute(
        update(OperationRunTenant)
        .where(OperationRunTenant.run_id == run_id, OperationRunTenant.accounted.is_(False),
               OperationRunTenant.status.in_(SETTLED))
        .values(accounted=True)
        .returning(OperationRunTenant.tenant_id, OperationRunTenant.status, OperationRunTenant.counts,
                   OperationRunTenant.reason_code, OperationRunTenant.message)
    ).all()
    if not rows:
        db.session.commit()
        return False
    run = db.session.execute(
        select(OperationRun).where(OperationRun.id == run_id).execution_options(populate_existing=True)
    ).scalar_one()
    summary = dict(run.summary_counts or {})
    failures = list(run.failure_summary or [])
    for tenant_id, status, counts, reason, message in rows:
        run.tenants_done += 1
        if status == "failed":
            run.tenants_failed += 1
            if len(failures) < MAX_FAILURES_KEPT:
                failures.append({"reason_code": reason or "unexpected_error", "message": message or "",
                                 "tenant_id": tenant_id})
        elif status == "skipped":
            run.tenants_skipped += 1
        for key, value in (counts or {}).items():
            summary[key] = summary.get(key, 0) + value
    summary["tenants"] = run.tenants_done
    summary["failed"] = run.tenants_failed
    run.summary_counts = summary
    run.failure_summary = list(failures)  # a copy: never mutate a list the session has flushed
    if run.status != "completed" and not (run.context or {}).get("circuit_open") and _circuit_trips(run):
        # Stop dispatching: pending tenants are cancelled (their jobs will find nothing to
        # claim) and accounted right here; running ones finish and account later.
        run.context = {**(run.context or {}), "circuit_open": True}
        n = _transition(run_id, None, ("pending",), "cancelled", None, "circuit_open",
                        "Not run: the circuit breaker stopped this run after too many failures.")
        if n:
            db.session.execute(
                update(_RT).where(_RT.c.run_id == run_id, _RT.c.status == "cancelled", _RT.c.accounted.is_(False))
                .values(accounted=True))
            run.tenants_done += n
            summary["tenants"] = run.tenants_done
            run.summary_counts = dict(summary)
        circuit = {"reason_code": "circuit_open", "tenant_id": None,
                   "message": ngettext("Circuit breaker opened: %(failed)s of %(num)d tenant failed.",
                                       "Circuit breaker opened: %(failed)s of %(num)d tenants failed.",
                                       run.tenants_done - run.tenants_skipped - n, failed=run.tenants_failed)}
        run.failure_summary = ([circuit] + failures)[:MAX_FAILURES_KEPT]
    completed_now = False
    if run.tenants_done >= run.tenants_total and run.status != "completed":
        _mark_completed(run)
        completed_now = True
        if db.engine.dialect.name == "postgresql":
            # Workers may commit asynchronously; a run's completion is always durable.
            db.session.execute(text("SET LOCAL synchronous_commit TO on"))
    db.session.commit()
    if completed_now:
        _after_completion(run_id)
    return completed_now


def _circuit_trips(run: OperationRun) -> bool:
    op = current_app.extensions["tenantpilot"].registry.operation_types.get(run.type)
    if op is None:
        return False
    config = current_app.config
    minimum = op.circuit_min_tenants if op.circuit_min_tenants is not None else config["TENANTPILOT_CIRCUIT_MIN_TENANTS"]
    ratio = op.circuit_failure_ratio if op.circuit_failure_ratio is not None else config["TENANTPILOT_CIRCUIT_FAILURE_RATIO"]
    attempted = run.tenants_done - run.tenants_skipped
    return attempted >= minimum and run.tenants_failed > ratio * attempted


def unaccounted_runs() -> list[int]:
    """Runs with settled rows nobody accounted (their worker died in between)."""
    return list(db.session.scalars(
        select(OperationRunTenant.run_id).where(OperationRunTenant.accounted.is_(False),
                                                OperationRunTenant.status.in_(SETTLED)).distinct()
    ))


def validate_counts(op, counts) -> dict:
    """An executor's counts: known keys only, non-negative ints."""
    counts = dict(counts or {})
    allowed = op.allowed_summary_keys - RESERVED_KEYS
    for key, value in counts.items():
        if key not in allowed:
            raise ValueError(f"summary key {key!r} is not registered for {op.key}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"summary count {key!r} must be a non-negative int")
    return counts


def _mark_completed(run: OperationRun) -> None:
    from . import outbox, run_rollup

    outbox.record_run_completed(run)  # the completion's effects commit with it
    run.status = "completed"
    run.completed_at = utcnow()
    if run.started_at is None:
        run.started_at = run.completed_at
    if run.cancel_requested:
        run.outcome = "cancelled"
    elif (run.context or {}).get("aborted") or (run.context or {}).get("circuit_open"):
        run.outcome = "failed"
    elif run.tenants_failed == 0:
        run.outcome = "partially_succeeded" if _items_failed(run) else "succeeded"
    elif run.tenants_failed >= run.tenants_done - run.tenants_skipped:
        run.outcome = "failed"
    else:
        run.outcome = "partially_succeeded"
    run_rollup.record_completed(run)  # the dashboard's rollup, in the completing transaction


def _items_failed(run: OperationRun) -> bool:
    """Whether an operation type that reports item-level failures (its
    ``partial_failure_key``) had some, though every tenant finished."""
    op = current_app.extensions["tenantpilot"].registry.operation_types.get(run.type)
    key = op.partial_failure_key if op is not None else None
    return bool(key and (run.summary_counts or {}).get(key))


def _after_completion(run_id: int) -> None:
    """Deliver the completion's outbox rows right after the completing commit. Each
    plugin's implementation is isolated: one that raises is logged, retried later by the
    scheduler, and the others still run."""
    from . import outbox

    outbox.deliver_run(run_id)


def cancel(run_id: int) -> bool:
    """Cancel pending tenants; running ones finish. False if the run is not active."""
    _lock_run(run_id)
    res = db.session.execute(
        update(OperationRun).where(OperationRun.id == run_id, OperationRun.status.in_(("queued", "running")))
        .values(cancel_requested=True)
    )
    if res.rowcount != 1:
        db.session.rollback()
        return False
    _transition(run_id, None, ("pending",), "cancelled")
    _account_locked(run_id)
    return True


def abort(run_id: int, reason_code: str, message: str) -> None:
    """Fail every unsettled tenant (e.g. the queue was unreachable at enqueue time)."""
    _lock_run(run_id)
    run = db.session.get(OperationRun, run_id)
    run.context = {**(run.context or {}), "aborted": reason_code}
    db.session.flush()
    _transition(run_id, None, ("pending", "running"), "failed", None, reason_code, message)
    _account_locked(run_id)
