"""/system/api/v1/runbooks: list, preflight, start — the rules of the runbook pages
(``runbook_starts``), through the start seam, answered as JSON."""
from __future__ import annotations

import marshmallow as ma
from flask import current_app
from flask_login import current_user
from marshmallow import validate

from .. import approvals, controls, idempotency, runbook_starts
from ..api import REASON_CODES
from ..planes import platform_required
from .api_schemas import ControlStateSchema, Id, RunSummarySchema, ScopeSchema, Text, run_summary
from .apiv1 import Blueprint, field_errors, problem
from .system import current_actor

bp = Blueprint("api_runbooks", __name__, url_prefix="/runbooks", tag="Runbooks",
               description="Runbooks: list, preflight and start (preflight id + typed confirmation word + reason).")


def control_state(control_key: str | None) -> dict:
    registry = current_app.extensions["tenantpilot"].registry
    decision = controls.evaluate(control_key, None)
    paused_ws = sorted(controls.paused_workspaces(control_key))
    control = registry.control_keys.get(control_key) if control_key else None
    state = "paused" if decision.paused else (f"paused in {len(paused_ws)} workspaces" if paused_ws else "enabled")
    return {"key": control_key or "", "label": control.label if control else "", "state": state,
            "paused": decision.paused, "reason": decision.reason if decision.paused else None,
            "paused_workspace_ids": paused_ws}


class RunbookSchema(ma.Schema):
    key = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    scopes = ma.fields.List(ma.fields.String(), required=True)
    reason_required_scopes = ma.fields.List(ma.fields.String(), required=True)
    confirmation_word = ma.fields.String(required=True)
    control = ma.fields.Nested(ControlStateSchema, required=True)


class RunbookListSchema(ma.Schema):
    runbooks = ma.fields.List(ma.fields.Nested(RunbookSchema), required=True)


class PreflightRequestSchema(ma.Schema):
    scope = ma.fields.Nested(ScopeSchema, required=True)


class PreflightSchema(ma.Schema):
    preflight_id = ma.fields.Integer(required=True, metadata={"description": "Pass it to start within 15 minutes."})
    runbook = ma.fields.String(required=True)
    scope = ma.fields.Dict(required=True)
    scope_label = ma.fields.String(required=True)
    result = ma.fields.Dict(required=True, metadata={
        "description": "The runbook's figures: affected_count, total_count, estimated_tenants, and its own."})
    nothing_to_do = ma.fields.Boolean(required=True)
    expires_at = ma.fields.String(required=True)


class StartRequestSchema(ma.Schema):
    preflight_id = Id(required=True)
    confirmation = Text(max_length=100, required=True,
                        metadata={"description": "The runbook's confirmation word, typed exactly."})
    reason_code = ma.fields.String(required=True, validate=validate.OneOf(REASON_CODES))
    reason_text = Text(max_length=500, load_default="")


class ApprovalRequestedSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "approval_requested"})
    message = ma.fields.String(required=True)
    approval = ma.fields.Dict(required=True, metadata={"description": "The approval request (see Approvals)."})


class StartSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "started | deduped | scope_busy"})
    message = ma.fields.String(required=True)
    run = ma.fields.Nested(RunSummarySchema, required=True)


def visible_runbook(key: str):
    """404 for an unknown runbook, 403 without the runbook's own capability (as the page)."""
    runbook = current_app.extensions["tenantpilot"].registry.runbooks.get(key)
    if runbook is None:
        problem(404, detail=f"No runbook “{key[:100]}”.")
    if not current_user.can(runbook.capability):
        problem(403, detail=f"This needs the capability {runbook.capability}.")
    return runbook


def runbook_view(rb) -> dict:
    return {"key": rb.key, "label": rb.label, "description": rb.description or "", "scopes": list(rb.scopes),
            "reason_required_scopes": list(rb.reason_required_scopes), "confirmation_word": rb.confirmation_word,
            "control": control_state(rb.control_key)}


@bp.route("", methods=["GET"])
@platform_required("platform.runbooks.view")
@bp.response(200, RunbookListSchema)
def list_runbooks():
    """Runbooks this token may run, each with its control state."""
    registry = current_app.extensions["tenantpilot"].registry
    return {"runbooks": [runbook_view(rb) for rb in registry.runbooks.values() if current_user.can(rb.capability)]}


@bp.route("/<key>/preflight", methods=["POST"])
@platform_required("platform.runbooks.view", "platform.runbooks.run")
@bp.arguments(PreflightRequestSchema)
@bp.response(201, PreflightSchema)
def preflight(body, key: str):
    """Count what the runbook would change in a scope (read-only) and store the figures."""
    runbook = visible_runbook(key)
    raw = body["scope"]
    errors = runbook_starts.scope_errors(runbook, raw["kind"], raw.get("workspace_id"), raw.get("tenant_id"))
    if errors:
        field_errors({f"scope.{k}": v for k, v in errors.items()})
    scope = runbook_starts.normalized_scope(raw["kind"], raw.get("workspace_id"), raw.get("tenant_id"))
    event, result = runbook_starts.record_preflight(runbook, scope, current_actor())
    if event is None:
        problem(503, "preflight-not-stored", "Preflight not stored",
                "The preflight could not be stored just now. Run it again in a moment.")
    from ..timeutil import iso_utc

    return {"preflight_id": event.id, "runbook": runbook.key, "scope": scope,
            "scope_label": runbook_starts.scope_label(scope), "result": result,
            "nothing_to_do": not result.get("affected_count"), "expires_at": iso_utc(runbook_starts.expires_at(event))}


@bp.route("/<key>/start", methods=["POST"])
@platform_required("platform.runbooks.view", "platform.runbooks.run")
@bp.arguments(StartRequestSchema)
@bp.response(201, StartSchema, description="Started.")
@bp.alt_response(200, schema=StartSchema, description="Not started again: deduped, scope busy, or a replayed "
                                                      "Idempotency-Key (the run it is about).")
@bp.alt_response(202, schema=ApprovalRequestedSchema, description="This scope needs a second operator's approval: "
                                                               "nothing started; the approval request is returned.")
def start(body, key: str):
    """Start from a stored preflight: the page's rules (fresh own preflight, typed word,
    reason), then drift, then the start seam (paused → 409, deduped/scope busy → 200)."""
    runbook = visible_runbook(key)
    actor = current_actor()
    event, why = runbook_starts.load_preflight(runbook, body["preflight_id"], actor)
    if event is None:
        field_errors({"preflight_id": why})
    scope, result = event.meta["scope"], event.meta["result"]
    if not result.get("affected_count"):
        problem(409, "nothing-to-do", "Nothing to change", "The preflight found nothing to change; nothing was started.")
    errors = runbook_starts.confirmation_errors(runbook, scope, actor, body["confirmation"], body["reason_code"],
                                                body["reason_text"].strip())
    if errors:
        field_errors(errors)
    try:  # an Idempotency-Key header makes a retried request safe, as the form token does a resubmit
        claimed = idempotency.claim(f"api.runbook.start:{runbook.key}")
    except idempotency.AlreadySubmitted as done:
        return already_submitted(done)
    drift = runbook_starts.drift(runbook, scope, result)
    if drift is not None:
        problem(409, "drift", "The numbers changed since the preflight", drift, preflight_id=event.id)
    if approvals.needs_approval(runbook, scope):
        # Four-eyes: nothing starts now; another operator approves the stored preflight.
        paused = approvals.paused_now(runbook, scope, actor, "api")
        if paused is not None:
            return outcome_response(paused)
        req = approvals.request(runbook, event, actor, body["reason_code"], body["reason_text"].strip(), "api")
        idempotency.remember(claimed, f"/system/api/v1/approvals/{req.id}")
        return approval_requested(req)
    outcome = runbook_starts.start(runbook, event, actor, body["reason_code"], body["reason_text"].strip(), "api")
    if outcome.run is not None and outcome.ok:
        idempotency.remember(claimed, f"/system/api/v1/runs/{outcome.run.id}")
    return outcome_response(outcome)


def approval_requested(req):
    """202 with the request. A Response of its own: flask-smorest would shape any other
    status with the 201's schema."""
    from flask import jsonify

    from .api_approvals import approval_view

    body = ApprovalRequestedSchema().dump({
        "status": "approval_requested", "approval": approval_view(req),
        "message": "Approval requested: another operator must approve before the run starts."})
    response = jsonify(body)
    response.status_code = 202
    return response


def already_submitted(done):
    """The answer to a replayed Idempotency-Key: the run (or approval request) the first
    request led to."""
    from ..extensions import db
    from ..models import ApprovalRequest, OperationRun

    if "/approvals/" in (done.result_url or ""):
        approval_id = done.result_url.rsplit("/", 1)[-1]
        req = db.session.get(ApprovalRequest, int(approval_id)) if approval_id.isdigit() else None
        if req is not None:
            return approval_requested(req)
    run_id = (done.result_url or "").rsplit("/", 1)[-1]
    run = db.session.get(OperationRun, int(run_id)) if run_id.isdigit() else None
    if run is None:
        problem(409, "already-submitted", "Already submitted",
                "A request with this Idempotency-Key was already made; it started nothing.")
    return {"status": "deduped", "message": "This request was already made; nothing was started again.",
            "run": run_summary(run)}, 200


def refuse_unstarted(outcome) -> None:
    """Raise the problem for a StartResult that started nothing new and has no run to
    show (``sdk.api_refuse_unstarted``): paused → 409 ``paused`` with the title and the
    reason, forbidden → 403, not found → 404, invalid → 400, queue down → 503. Every
    surface that starts work answers these the same way."""
    if outcome.status == "blocked":
        problem(409, "paused", outcome.extra.get("title") or "Paused", outcome.message,
                control_key=outcome.decision.control_key if outcome.decision else None,
                reason=outcome.decision.reason if outcome.decision else None)
    if outcome.status == "forbidden":
        problem(403, detail=outcome.message)
    if outcome.status == "not_found":
        problem(404, detail=outcome.message)
    if outcome.status == "enqueue_failed":
        problem(503, "queue-unavailable", "Queue unavailable", outcome.message,
                run_id=outcome.run.id if outcome.run else None)
    if not outcome.ok:
        problem(400, detail=outcome.message)


def outcome_response(outcome):
    """A StartResult as the API answers it (the same statuses every surface shows)."""
    refuse_unstarted(outcome)
    code = 201 if outcome.status == "started" else 200
    return {"status": outcome.status, "message": outcome.message, "run": run_summary(outcome.run)}, code
