"""Four-eyes approvals on the platform plane (/system/ops/approvals): the list (pending,
approved, rejected, expired, cancelled), one request beside a fresh re-count, and the
approve / reject / cancel forms. The rules are ``tenantpilot.approvals``; this module
only maps them to pages (404 unknown, 403 not allowed, 409 paused/decided/drift, 422
field errors)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from .. import approvals, controls, idempotency, runbook_starts
from ..extensions import db
from ..models import ApprovalRequest, AuditLog
from ..planes import platform_required
from . import inputs
from .forms import ApproveForm, EmptyForm, RejectForm
from .system import current_actor

bp = Blueprint("approvals", __name__)

TABS = ("pending", "approved", "rejected", "expired", "cancelled", "all")


@bp.get("/approvals")
@platform_required("platform.ops.view")
def approvals_list():
    status = request.args.get("status", "pending")
    if status not in TABS:
        status = "pending"
    before = inputs.arg_int("before")
    rows, more = approvals.search(None if status == "all" else status, before_id=before)
    return render_template(
        "system/approvals.html", rows=rows, status=status, tabs=TABS, pending=approvals.pending_count(),
        runbooks=current_app.extensions["tenantpilot"].registry.runbooks, scope_label=runbook_starts.scope_label,
        first_url=url_for("approvals.approvals_list", status=status) if before else None,
        next_url=url_for("approvals.approvals_list", status=status, before=rows[-1].id) if more else None)


def _load(approval_id: int) -> ApprovalRequest:
    req = db.session.get(ApprovalRequest, approval_id) if 0 < approval_id < 2 ** 31 else None
    if req is None:
        abort(404)
    return req


def _detail(req: ApprovalRequest, approve_form=None, reject_form=None, refusal=None, status: int = 200):
    runbook = approvals.runbook_of(req)
    actor = current_actor()
    now_figures = approvals.recount(req) if req.status == "pending" else None
    return render_template(
        "system/approval_detail.html", req=req, runbook=runbook, scope_text=runbook_starts.scope_label(req.scope),
        result=req.preflight_result or {}, now_figures=now_figures,
        drift_pct=approvals.drift_percent(req.preflight_result or {}, now_figures) if now_figures else None,
        overdue=approvals.is_overdue(req), can_decide=req.status == "pending" and approvals.may_approve(req, actor),
        is_requester=actor.id == req.requester_id, approve_form=approve_form or ApproveForm(),
        reject_form=reject_form or RejectForm(), cancel_form=EmptyForm(), refusal=refusal,
        preflight_event=db.session.get(AuditLog, req.preflight_audit_id),
        decision=controls.evaluate(runbook.control_key, (req.scope or {}).get("workspace_id")) if runbook else None,
    ), status


@bp.get("/approvals/<int:approval_id>")
@platform_required("platform.ops.view")
def approval_detail(approval_id: int):
    return _detail(_load(approval_id))


@bp.post("/approvals/<int:approval_id>/approve")
@platform_required("platform.ops.view")
def approve(approval_id: int):
    req = _load(approval_id)
    form = ApproveForm()
    if not form.validate_on_submit():
        _forbid_unless_decider(req)
        return _detail(req, approve_form=form, status=422)
    try:  # a resubmitted form is answered with what the first submit did
        key = idempotency.claim(f"approval.approve:{req.id}")
    except idempotency.AlreadySubmitted as done:
        flash("This approval was already submitted; nothing was started again.", "info")
        return redirect(done.result_url or url_for("approvals.approval_detail", approval_id=req.id))
    try:
        req, outcome = approvals.approve(req.id, current_actor(), form.confirmation.data, "system_ui")
    except approvals.ApprovalRefused as refused:
        db.session.rollback()
        if refused.slug == "own-request":  # said in words: the requester is looking at it
            return _detail(req, refusal=refused, status=403)
        if refused.status in (403, 404):
            abort(refused.status)
        if refused.field:
            form.confirmation.errors = [refused.message]
            return _detail(db.session.get(ApprovalRequest, approval_id), approve_form=form, status=refused.status)
        return _detail(db.session.get(ApprovalRequest, approval_id), refusal=refused, status=refused.status)
    target = url_for("runs.run_detail", run_id=outcome.run.id)
    idempotency.remember(key, target)
    flash(f"Approved. {outcome.message}", "info")
    return redirect(target)


@bp.post("/approvals/<int:approval_id>/reject")
@platform_required("platform.ops.view")
def reject(approval_id: int):
    req = _load(approval_id)
    form = RejectForm()
    if not form.validate_on_submit():
        _forbid_unless_decider(req)
        return _detail(req, reject_form=form, status=422)
    try:
        approvals.reject(req.id, current_actor(), form.reason.data, "system_ui")
    except approvals.ApprovalRefused as refused:
        db.session.rollback()
        if refused.slug == "own-request":
            return _detail(req, refusal=refused, status=403)
        if refused.status in (403, 404):
            abort(refused.status)
        if refused.field:
            form.reason.errors = [refused.message]
            return _detail(req, reject_form=form, status=refused.status)
        return _detail(db.session.get(ApprovalRequest, approval_id), refusal=refused, status=refused.status)
    flash("Rejected; the requester was told.", "info")
    return redirect(url_for("approvals.approval_detail", approval_id=approval_id))


@bp.post("/approvals/<int:approval_id>/cancel")
@platform_required("platform.ops.view")
def cancel(approval_id: int):
    req = _load(approval_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        approvals.cancel(req.id, current_actor(), "system_ui")
    except approvals.ApprovalRefused as refused:
        db.session.rollback()
        if refused.status in (403, 404):
            abort(refused.status)
        return _detail(db.session.get(ApprovalRequest, approval_id), refusal=refused, status=refused.status)
    flash("Request cancelled.", "info")
    return redirect(url_for("approvals.approval_detail", approval_id=approval_id))


def _forbid_unless_decider(req: ApprovalRequest) -> None:
    """An invalid form from someone who may not decide is a 403, not field errors."""
    if not approvals.may_approve(req, current_actor()):
        abort(403)
    if req.status != "pending":
        abort(409)
