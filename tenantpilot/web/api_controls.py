"""/system/api/v1/controls: operational controls (SPEC 4) — each key's state and active
pauses, the impact preview, pause and resume. Writes go through ``control_service``
like the controls page's, with the same validation and the same audit rows."""
from __future__ import annotations

from datetime import timezone

import marshmallow as ma

from .. import control_service as svc
from ..planes import platform_required
from ..timeutil import iso_utc
from .api_schemas import Id, QueryId, Text
from .apiv1 import Blueprint, field_errors, problem
from .controls_ui import CAPABILITY, owner_names, workspace_names
from .system import current_actor

bp = Blueprint("api_controls", __name__, url_prefix="/controls", tag="Controls",
               description="Operational controls: state, impact preview, pause and resume (audited).")

STATES = ("enabled", "paused", "workspace_paused")


class PauseSchema(ma.Schema):
    scope_type = ma.fields.String(required=True, metadata={"description": "global | workspace"})
    workspace_id = ma.fields.Integer(allow_none=True, required=True)
    workspace_name = ma.fields.String(allow_none=True, required=True)
    reason = ma.fields.String(required=True)
    expires_at = ma.fields.String(allow_none=True, required=True, metadata={"description": "ISO 8601, or null: until resumed."})
    paused_by = ma.fields.String(required=True, metadata={"description": "Who set (or last updated) the pause."})
    updated_at = ma.fields.String(required=True)


class ControlSchema(ma.Schema):
    key = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    scopes = ma.fields.List(ma.fields.String(), required=True)
    operation_types = ma.fields.List(ma.fields.String(), required=True,
                                     metadata={"description": "Operation types a pause blocks."})
    state = ma.fields.String(required=True, metadata={"description": " | ".join(STATES)})
    state_label = ma.fields.String(required=True)
    pauses = ma.fields.List(ma.fields.Nested(PauseSchema), required=True)


class ControlListSchema(ma.Schema):
    controls = ma.fields.List(ma.fields.Nested(ControlSchema), required=True)


class ScopeArgs(ma.Schema):
    scope_type = Text(max_length=20, required=True, metadata={"description": "global | workspace"})
    workspace_id = QueryId(load_default=None, metadata={"description": "Required for scope_type=workspace."})


class ImpactSchema(ma.Schema):
    control_key = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    scope_type = ma.fields.String(required=True)
    workspace_id = ma.fields.Integer(allow_none=True, required=True)
    workspace_name = ma.fields.String(allow_none=True, required=True)
    workspaces = ma.fields.Integer(required=True)
    tenants = ma.fields.Integer(required=True, metadata={"description": "Active tenants in the scope."})
    active_runs = ma.fields.Integer(required=True,
                                    metadata={"description": "Queued or running runs of gated types (they continue)."})
    already_paused = ma.fields.Boolean(required=True)
    sentence = ma.fields.String(required=True)
    runs_sentence = ma.fields.String(required=True)


class PauseRequestSchema(ma.Schema):
    scope_type = Text(max_length=20, required=True, metadata={"description": "global | workspace"})
    workspace_id = Id(allow_none=True, load_default=None)
    reason = Text(max_length=2000, required=True, metadata={"description": "5 to 500 characters."})
    expires_at = ma.fields.AwareDateTime(format="iso", allow_none=True, load_default=None,
                                         metadata={"description": "ISO 8601 with an offset; null: until resumed."})


class ResumeRequestSchema(ma.Schema):
    scope_type = Text(max_length=20, required=True, metadata={"description": "global | workspace"})
    workspace_id = Id(allow_none=True, load_default=None)


class PauseOutcomeSchema(ma.Schema):
    outcome = ma.fields.String(required=True, metadata={"description": "paused | updated"})
    control = ma.fields.Nested(ControlSchema, required=True)


class ResumeOutcomeSchema(ma.Schema):
    outcome = ma.fields.String(required=True, metadata={"description": "resumed | already_enabled"})
    control = ma.fields.Nested(ControlSchema, required=True)


def _control(key: str):
    control = svc.control_keys().get(key)
    if control is None:
        problem(404, detail=f"No control key “{key[:100]}”.")
    return control


def control_view(control) -> dict:
    pauses = svc.active_pauses(control.key)
    owners = owner_names(pauses)
    ws_names = workspace_names(p.workspace_id for p in pauses)
    state = ("paused" if any(p.scope_type == "global" for p in pauses)
             else "workspace_paused" if pauses else "enabled")
    return {
        "key": control.key, "label": control.label, "scopes": list(control.scopes),
        "operation_types": sorted(svc.gated_operation_types(control.key)),
        "state": state, "state_label": svc.state_label(pauses),
        "pauses": [{
            "scope_type": p.scope_type, "workspace_id": p.workspace_id,
            "workspace_name": ws_names.get(p.workspace_id) if p.workspace_id else None,
            "reason": p.reason_text or "", "expires_at": iso_utc(p.expires_at) if p.expires_at else None,
            "paused_by": owners.get(p.updated_by or p.created_by, "System"),
            "updated_at": iso_utc(p.updated_at or p.created_at),
        } for p in pauses],
    }


def _raise_fields(exc: svc.ControlValidationError):
    """The service's field errors, as the page shows them next to its fields."""
    field_errors(dict(exc.errors))


@bp.route("", methods=["GET"])
@platform_required(CAPABILITY)
@bp.response(200, ControlListSchema)
def list_controls():
    """Every control key with its state and active pauses."""
    return {"controls": [control_view(c) for c in svc.control_keys().values()]}


@bp.route("/<key>", methods=["GET"])
@platform_required(CAPABILITY)
@bp.response(200, ControlSchema)
def get_control(key: str):
    """One control key with its state and active pauses."""
    return control_view(_control(key))


@bp.route("/<key>/impact", methods=["GET"])
@platform_required(CAPABILITY)
@bp.arguments(ScopeArgs, location="query")
@bp.response(200, ImpactSchema)
def impact(args, key: str):
    """What a pause (or resume) of this scope touches, from current data (nothing written)."""
    control = _control(key)
    try:
        _, workspace = svc.validate_scope(control.key, args["scope_type"], args["workspace_id"])
    except svc.ControlValidationError as exc:
        _raise_fields(exc)
    ws_id = workspace.id if workspace else None
    found = svc.impact(control.key, args["scope_type"], ws_id)
    already = any(p.scope_type == args["scope_type"] and p.workspace_id == ws_id for p in svc.active_pauses(control.key))
    return {"control_key": control.key, "label": found.label, "scope_type": found.scope_type, "workspace_id": ws_id,
            "workspace_name": found.workspace_name, "workspaces": found.workspaces, "tenants": found.tenants,
            "active_runs": found.active_runs, "already_paused": already, "sentence": found.sentence,
            "runs_sentence": found.runs_sentence}


@bp.route("/<key>/pause", methods=["POST"])
@platform_required(CAPABILITY)
@bp.arguments(PauseRequestSchema)
@bp.response(201, PauseOutcomeSchema)
def pause(body, key: str):
    """Pause a scope (or update the reason and expiry of its pause). Audited."""
    control = _control(key)
    expires_at = body["expires_at"]
    if expires_at is not None:
        expires_at = expires_at.astimezone(timezone.utc).replace(tzinfo=None)  # stored naive UTC
    try:
        outcome = svc.pause(control.key, body["scope_type"], body["workspace_id"], body["reason"], expires_at,
                            current_actor())
    except svc.ControlValidationError as exc:
        _raise_fields(exc)
    return {"outcome": outcome, "control": control_view(control)}


@bp.route("/<key>/resume", methods=["POST"])
@platform_required(CAPABILITY)
@bp.arguments(ResumeRequestSchema)
@bp.response(200, ResumeOutcomeSchema)
def resume(body, key: str):
    """Resume a paused scope; ``already_enabled`` when it was not paused (nothing changed)."""
    control = _control(key)
    try:
        outcome = svc.resume(control.key, body["scope_type"], body["workspace_id"], current_actor())
    except svc.ControlValidationError as exc:
        _raise_fields(exc)
    return {"outcome": outcome, "control": control_view(control)}
