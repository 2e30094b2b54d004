"""Operation runs on the platform plane (/system/ops/runs): the list with its filters, a
run's page with live progress, its tenants as CSV, cancel and retry of failed tenants."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import and_, func, or_, select

from .. import audit, seam, words
from ..extensions import db
from ..models import AuditLog, OperationRun, OperationRunTenant, Tenant
from ..planes import platform_required
from ..runs import Scope
from ..timeutil import iso_utc, utcnow
from . import inputs, lookup
from .forms import EmptyForm
from .runbooks_ui import registry
from .system import current_actor

bp = Blueprint("runs", __name__)

PAGE_SIZE = 50
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
RUN_STATUSES = ("queued", "running", "completed")
# A blocked start creates no run (SPEC 4), so "blocked" is never a run's outcome.
OUTCOMES = ("pending", "succeeded", "partially_succeeded", "failed", "cancelled")


@dataclass
class RunSearch:
    """One page of the runs list: the rows, whether more follow, and the filters as
    understood (the page shows them; a name that resolved to nothing lists nothing)."""

    rows: list
    more: bool
    filters: dict
    tenant_match: lookup.NameMatch
    workspace_match: lookup.NameMatch


def search_runs(*, type: str = "", status: str = "", outcome: str = "", tenant: int | None = None,
                tenant_name: str = "", workspace_name: str = "", window: str = "", before: int | None = None,
                limit: int = PAGE_SIZE) -> RunSearch:
    """The runs list's query, newest first, keyset by id (``before``): the page and the
    API (``api_runs``) filter the same way. Unknown status, outcome or window values are
    ignored here; the API refuses them before."""
    q = select(OperationRun)
    filters = {"type": type or "", "status": status or "", "outcome": outcome or "", "tenant": tenant,
               "window": window if window in WINDOWS else ""}
    # Names as operators type them; ``tenant=<id>`` stays for links from other pages.
    tenant_match = lookup.resolve_tenants(tenant_name or "")
    workspace_match = lookup.resolve_workspaces(workspace_name or "")
    if filters["tenant"] and not tenant_match.active:
        tenant_match.text = db.session.scalar(select(Tenant.name).where(Tenant.id == filters["tenant"])) or ""
    if filters["type"]:
        q = q.where(OperationRun.type == filters["type"])
    if filters["status"] in RUN_STATUSES:
        q = q.where(OperationRun.status == filters["status"])
    if filters["outcome"] in OUTCOMES:
        q = q.where(OperationRun.outcome == filters["outcome"])
    if tenant_match.active and not tenant_match.error and len(tenant_match.ids) == 1:
        filters["tenant"] = tenant_match.ids[0]
    if filters["tenant"]:
        # Every run that touched a tenant has a result row for it (the seam writes one even
        # for a skipped tenant), so a join on (tenant_id, run_id) finds them newest first.
        q = q.join(OperationRunTenant, and_(OperationRunTenant.run_id == OperationRun.id,
                                            OperationRunTenant.tenant_id == filters["tenant"]))
    elif tenant_match.ids:
        q = q.where(OperationRun.id.in_(select(OperationRunTenant.run_id)
                                        .where(OperationRunTenant.tenant_id.in_(tenant_match.ids))))
    if workspace_match.ids:
        # Runs scoped to the workspace or to one of its tenants (fleet runs belong to none).
        q = q.where(OperationRun.workspace_id.in_(workspace_match.ids))
    name_errors = [m.error for m in (tenant_match, workspace_match) if m.error]
    if filters["window"]:
        q = q.where(OperationRun.created_at >= utcnow() - WINDOWS[filters["window"]])
    if before:
        q = q.where(OperationRun.id < before)  # keyset: ids grow with creation time
        if filters["tenant"]:
            q = q.where(OperationRunTenant.run_id < before)  # lets the tenant index seek
    # A name that matched nothing (or too much) lists nothing: never more than was asked for.
    rows = [] if name_errors else db.session.scalars(q.order_by(OperationRun.id.desc()).limit(limit + 1)).all()
    return RunSearch(list(rows[:limit]), len(rows) > limit, filters, tenant_match, workspace_match)


@bp.get("/runs")
@platform_required("platform.ops.view")
def runs_list():
    args = request.args
    tenant, before = inputs.arg_int("tenant"), inputs.arg_int("before")
    found = search_runs(type=args.get("type") or "", status=args.get("status") or "",
                        outcome=args.get("outcome") or "", tenant=tenant,
                        tenant_name=args.get("tenant_name", ""), workspace_name=args.get("workspace_name", ""),
                        window=args.get("window") or "", before=before)
    rows = found.rows
    next_args = {k: v for k, v in args.items() if k != "before"}
    return render_template("system/runs.html", runs=rows, filters=found.filters, types=sorted(registry().operation_types),
                           tenant_match=found.tenant_match, workspace_match=found.workspace_match,
                           type_labels={k: op.label for k, op in registry().operation_types.items()},
                           statuses=RUN_STATUSES, outcomes=OUTCOMES, windows=WINDOWS,
                           next_url=url_for("runs.runs_list", **next_args, before=rows[-1].id) if found.more else None,
                           first_url=url_for("runs.runs_list", **next_args) if before else None)


def _run_or_404(run_id: int) -> OperationRun:
    run = db.session.get(OperationRun, run_id)
    if run is None:
        abort(404)
    g.run_id = run.id
    return run


TENANT_PAGE = 100


def tenant_results(run_id: int, status: str = "", after: int = 0, limit: int | None = None) -> list:
    """A run's tenant results as (OperationRunTenant, tenant name, external id) rows by
    tenant id, keyset after ``after``: the run page, its CSV and the API read the same rows.
    With ``limit``, up to ``limit + 1`` rows (the extra one says that more follow)."""
    q = (select(OperationRunTenant, Tenant.name, Tenant.external_id)
         .join(Tenant, Tenant.id == OperationRunTenant.tenant_id).where(OperationRunTenant.run_id == run_id))
    if status:
        q = q.where(OperationRunTenant.status == status)
    if after:
        q = q.where(OperationRunTenant.tenant_id > after)
    q = q.order_by(OperationRunTenant.tenant_id)
    return db.session.execute(q if limit is None else q.limit(limit + 1)).all()


def _detail_context(run: OperationRun) -> dict:
    """Everything the run page shows; the live fragment re-renders the same parts."""
    status_filter = request.args.get("tenant_status") or ""
    after = inputs.arg_int("after", minimum=0) or 0
    tenant_rows = [(rt, name) for rt, name, _ in tenant_results(run.id, status_filter, after, TENANT_PAGE)]
    more = len(tenant_rows) > TENANT_PAGE
    tenant_rows = tenant_rows[:TENANT_PAGE]
    by_status = dict(db.session.execute(
        select(OperationRunTenant.status, func.count()).where(OperationRunTenant.run_id == run.id)
        .group_by(OperationRunTenant.status)).all())
    runbook = registry().runbooks.get(run.type)
    return dict(
        run=run, tenant_rows=tenant_rows, by_status=by_status, runbook=runbook, status_filter=status_filter,
        form=EmptyForm(),
        next_url=url_for("runs.run_detail", run_id=run.id, tenant_status=status_filter or None,
                         after=tenant_rows[-1][0].tenant_id) if more else None,
        can_run=current_user.can("platform.runbooks.run") and (runbook is None or current_user.can(runbook.capability)),
    )


@bp.get("/runs/<int:run_id>")
@platform_required("platform.ops.view")
def run_detail(run_id: int):
    run = _run_or_404(run_id)
    events = db.session.scalars(
        select(AuditLog).where(or_(and_(AuditLog.target_type == "operation_run", AuditLog.target_id == str(run.id)),
                                   AuditLog.id == (run.context or {}).get("preflight_audit_id", -1)))
        .order_by(AuditLog.id)).all()
    return render_template(
        "system/run_detail.html", events=events, **_detail_context(run),
        parent=db.session.get(OperationRun, run.parent_run_id) if run.parent_run_id else None,
        retries=db.session.scalars(select(OperationRun.id).where(OperationRun.parent_run_id == run.id)).all(),
    )


@bp.get("/runs/<int:run_id>/progress")
@platform_required("platform.ops.view")
def run_progress(run_id: int):
    """The live parts of the detail page (progress, actions, tenants); htmx polls this
    while the run is active and swaps each part in place."""
    return render_template("system/_run_live.html", live=True, **_detail_context(_run_or_404(run_id)))


@bp.get("/runs/<int:run_id>/tenants.csv")
@platform_required("platform.ops.view")
def run_csv(run_id: int):
    run = _run_or_404(run_id)
    rows = tenant_results(run.id)
    # One column per count the tenants reported, headed by its label: the tenant's own
    # status ("skipped": the tenant was skipped) never reads like an item count
    # ("Findings skipped (already clean)").
    count_keys = words.order_keys({k for rt, _, _ in rows for k in (rt.counts or {})}, run.type)
    body = inputs.csv_text(
        ["Tenant ID", "Tenant name", "External ID", "Tenant status", "Reason code", "Message"]
        + [words.summary_label(k, run.type) for k in count_keys] + ["Started at", "Finished at"],
        ([rt.tenant_id, name, external_id, rt.status, rt.reason_code or "", rt.message or ""]
         + [(rt.counts or {}).get(k, "") for k in count_keys]
         + [iso_utc(rt.started_at), iso_utc(rt.finished_at)]
         for rt, name, external_id in rows))
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=run-{run.id}-tenants.csv"})


def check_can_act(run: OperationRun) -> None:
    """Cancel and retry need the run capability and the runbook's own: 403 otherwise."""
    runbook = registry().runbooks.get(run.type)
    if not current_user.can("platform.runbooks.run") or (runbook and not current_user.can(runbook.capability)):
        abort(403)


def _run_for_action(run_id: int, *, posted: bool = True) -> OperationRun:
    """A run an operator acts on (cancel, retry): 404, 403 without the run capability and
    the runbook's own, 400 without a valid CSRF token."""
    run = _run_or_404(run_id)
    check_can_act(run)
    if posted and not EmptyForm().validate_on_submit():
        abort(400)
    return run


def cancel_run(run: OperationRun, actor) -> bool:
    """Cancel pending tenants (running ones finish), audited; False when the run has
    already completed (nothing changed, nothing audited). The page and the API."""
    from ..runs import cancel

    if not cancel(run.id):
        return False
    audit.record("platform.ops.runs.cancel", actor=actor, target=("operation_run", run.id, run.type),
                 summary=f"Cancelled run #{run.id}")
    return True


@dataclass
class RetryRefused:
    """Why a retry of failed tenants starts nothing: a stable slug and the page's words."""

    slug: str
    message: str


def retry_failed(run: OperationRun, actor, source: str):
    """Start the run's runbook again for its failed tenants only, through the start seam
    (a child run of ``run``); audited when it started. → the seam's StartResult, or
    RetryRefused when there is nothing to retry here."""
    if registry().runbooks.get(run.type) is None:
        # Only runbooks start from the platform plane; the page does not offer this.
        return RetryRefused("not-a-runbook", "This run was started in the tenant plane; "
                                             "its members can run it again from there.")
    failed = list(db.session.scalars(select(OperationRunTenant.tenant_id).where(
        OperationRunTenant.run_id == run.id, OperationRunTenant.status == "failed")))
    if run.status != "completed" or not failed:
        return RetryRefused("nothing-to-retry", "Only a completed run with failed tenants can be retried.")
    scope = (run.context or {}).get("scope") or {"kind": "all_tenants"}
    outcome = seam.start(run.type, scope=Scope(scope["kind"], scope.get("workspace_id"), scope.get("tenant_id")),
                         actor=actor, source=source, tenant_ids=failed, parent_run_id=run.id,
                         context={"retry_of": run.id, "reason_code": (run.context or {}).get("reason_code"),
                                  "reason_text": f"Retry of failed tenants of run #{run.id}"})
    if outcome.status == "started":
        audit.record("platform.ops.runs.retry_failed", actor=actor, target=("operation_run", outcome.run.id, run.type),
                     summary=ngettext("Retried %(count)s failed tenant of run #%(run)s",
                                      "Retried %(count)s failed tenants of run #%(run)s", len(failed),
                                      count=f"{len(failed):,}", run=run.id),
                     metadata={"parent_run_id": run.id, "tenants": len(failed)})
    return outcome


@bp.get("/runs/<int:run_id>/cancel")
@platform_required("platform.ops.view")
def run_cancel_confirm(run_id: int):
    """Cancel asks first, and says what happens to each kind of tenant."""
    run = _run_for_action(run_id, posted=False)
    if not run.is_active:
        flash("This run has already completed; nothing to cancel.", "info")
        return redirect(url_for("runs.run_detail", run_id=run.id))
    by_status = dict(db.session.execute(
        select(OperationRunTenant.status, func.count()).where(OperationRunTenant.run_id == run.id)
        .group_by(OperationRunTenant.status)).all())
    return render_template("system/run_cancel.html", run=run, form=EmptyForm(),
                           pending=by_status.get("pending", 0), running=by_status.get("running", 0),
                           settled=sum(n for s, n in by_status.items() if s not in ("pending", "running")))


@bp.post("/runs/<int:run_id>/cancel")
@platform_required("platform.ops.view")
def run_cancel(run_id: int):
    run = _run_for_action(run_id)
    if request.form.get("confirmed") != "yes":
        return redirect(url_for("runs.run_cancel_confirm", run_id=run.id), 303)
    if cancel_run(run, current_actor()):
        flash("Cancel requested: pending tenants will not run; running ones finish.", "info")
    else:
        flash("This run has already completed; nothing to cancel.", "info")
    return redirect(url_for("runs.run_detail", run_id=run.id))


@bp.post("/runs/<int:run_id>/retry-failed")
@platform_required("platform.ops.view")
def run_retry_failed(run_id: int):
    run = _run_for_action(run_id)
    outcome = retry_failed(run, current_actor(), "system_ui")
    if isinstance(outcome, RetryRefused):
        flash(outcome.message, "warning")
        return redirect(url_for("runs.run_detail", run_id=run.id))
    if outcome.status == "blocked":
        return render_template("system/blocked.html", outcome=outcome, back=url_for("runs.run_detail", run_id=run.id)), 409
    flash(outcome.message, "info")
    return redirect(url_for("runs.run_detail", run_id=outcome.run.id if outcome.run else run.id))
