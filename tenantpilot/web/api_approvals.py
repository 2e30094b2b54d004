"""/system/api/v1/approvals: four-eyes approval requests — list, one (with a fresh
re-count), approve (typed word), reject (reason), cancel (the requester). The same service
as the approvals pages (``tenantpilot.approvals``), so the same refusals: one's own
request, no capability, already decided, expired, drift, paused."""
from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from .. import approvals
from ..planes import platform_required
from ..timeutil import iso_utc
from .api_schemas import Cursor, Limit, RunSummarySchema, Text, decode_cursor, encode_cursor, run_summary
from .apiv1 import Blueprint, field_errors, problem
from .system import current_actor

bp = Blueprint("api_approvals", __name__, url_prefix="/approvals", tag="Approvals",
               description="Four-eyes approvals of runbook starts: the stored preflight is the thing approved.")


class ApprovalSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    runbook = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "pending | approved | rejected | expired | cancelled"})
    scope = ma.fields.Dict(required=True)
    scope_label = ma.fields.String(required=True)
    approved_figures = ma.fields.Dict(required=True, metadata={"description": "The stored preflight's figures."})
    preflight_audit_id = ma.fields.Integer(required=True)
    reason_code = ma.fields.String(required=True)
    reason_text = ma.fields.String(required=True)
    requester = ma.fields.Dict(required=True)
    decided_by = ma.fields.Dict(allow_none=True)
    decision_reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.String(required=True)
    expires_at = ma.fields.String(required=True)
    decided_at = ma.fields.String(allow_none=True)
    run_id = ma.fields.Integer(allow_none=True)
    may_decide = ma.fields.Boolean(required=True, metadata={"description": "This token may approve or reject it."})
    url = ma.fields.String(required=True)


class ApprovalDetailSchema(ApprovalSchema):
    recount = ma.fields.Dict(allow_none=True, metadata={"description": "A fresh, read-only preflight of the scope."})
    drift_percent = ma.fields.Float(allow_none=True)


class ApprovalListArgs(ma.Schema):
    status = ma.fields.String(load_default=None, validate=validate.OneOf(approvals.STATUSES))
    cursor = Cursor()
    limit = Limit()


class ApprovalListSchema(ma.Schema):
    approvals = ma.fields.List(ma.fields.Nested(ApprovalSchema), required=True)
    pending_count = ma.fields.Integer(required=True)
    next_cursor = ma.fields.String(allow_none=True)


class ApproveSchema(ma.Schema):
    confirmation = Text(max_length=100, required=True,
                        metadata={"description": "The runbook's confirmation word, typed again by the approver."})


class RejectSchema(ma.Schema):
    reason = Text(max_length=500, required=True)


class ApprovedSchema(ma.Schema):
    approval = ma.fields.Nested(ApprovalSchema, required=True)
    run = ma.fields.Nested(RunSummarySchema, required=True)


class ApprovalOnlySchema(ma.Schema):
    approval = ma.fields.Nested(ApprovalSchema, required=True)


def approval_view(req) -> dict:
    from .. import runbook_starts

    person = lambda u: {"id": u.id, "name": u.name} if u is not None else None  # noqa: E731 — no e-mail
    return {
        "id": req.id, "runbook": req.runbook_key, "status": req.status, "scope": dict(req.scope or {}),
        "scope_label": runbook_starts.scope_label(req.scope or {}), "approved_figures": dict(req.preflight_result or {}),
        "preflight_audit_id": req.preflight_audit_id, "reason_code": req.reason_code, "reason_text": req.reason_text or "",
        "requester": person(req.requester), "decided_by": person(req.decided_by), "decision_reason": req.decision_reason,
        "created_at": iso_utc(req.created_at), "expires_at": iso_utc(req.expires_at),
        "decided_at": iso_utc(req.decided_at) or None, "run_id": req.run_id,
        "may_decide": req.status == "pending" and approvals.may_approve(req, current_actor()),
        "url": f"/system/api/v1/approvals/{req.id}",
    }


def _refused(exc: approvals.ApprovalRefused):
    """An ApprovalRefused as the API answers it: 422 names the field, others their slug."""
    if exc.status == 422 and exc.field:
        field_errors({exc.field: exc.message})
    problem(exc.status, exc.slug, exc.title, exc.message)


@bp.route("", methods=["GET"])
@platform_required("platform.ops.view")
@bp.arguments(ApprovalListArgs, location="query")
@bp.response(200, ApprovalListSchema)
def list_approvals(args):
    """Approval requests, newest first (``status`` filters), with the pending count."""
    rows, more = approvals.search(args["status"], decode_cursor(args["cursor"]), args["limit"])
    return {"approvals": [approval_view(r) for r in rows], "pending_count": approvals.pending_count(),
            "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}


@bp.route("/<int:approval_id>", methods=["GET"])
@platform_required("platform.ops.view")
@bp.response(200, ApprovalDetailSchema)
def get_approval(approval_id: int):
    """One request: the figures as the requester saw them, and a fresh re-count."""
    try:
        req = approvals.get(approval_id)
    except approvals.ApprovalRefused as exc:
        _refused(exc)
    now = approvals.recount(req) if req.status == "pending" else None
    return {**approval_view(req), "recount": now,
            "drift_percent": round(approvals.drift_percent(req.preflight_result or {}, now), 1) if now else None}


@bp.route("/<int:approval_id>/approve", methods=["POST"])
@platform_required("platform.ops.view")
@bp.arguments(ApproveSchema)
@bp.response(201, ApprovedSchema)
def approve(body, approval_id: int):
    """Approve with the typed word: the run starts as the requester, the approver in its
    context. Own request → 403; paused → 409 ``paused``; drift → 409 ``drift``."""
    try:
        req, outcome = approvals.approve(approval_id, current_actor(), body["confirmation"], "api")
    except approvals.ApprovalRefused as exc:
        _refused(exc)
    return {"approval": approval_view(req), "run": run_summary(outcome.run)}


@bp.route("/<int:approval_id>/reject", methods=["POST"])
@platform_required("platform.ops.view")
@bp.arguments(RejectSchema)
@bp.response(200, ApprovalOnlySchema)
def reject(body, approval_id: int):
    """Reject with a reason (5–500 characters); nothing starts."""
    try:
        req = approvals.reject(approval_id, current_actor(), body["reason"], "api")
    except approvals.ApprovalRefused as exc:
        _refused(exc)
    return {"approval": approval_view(req)}


@bp.route("/<int:approval_id>/cancel", methods=["POST"])
@platform_required("platform.ops.view")
@bp.response(200, ApprovalOnlySchema)
def cancel(approval_id: int):
    """The requester withdraws a pending request."""
    try:
        req = approvals.cancel(approval_id, current_actor(), "api")
    except approvals.ApprovalRefused as exc:
        _refused(exc)
    return {"approval": approval_view(req)}
