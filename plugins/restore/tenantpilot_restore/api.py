"""/admin/api/v1/tenants/<tenant>/restore: the restore wizard's two final actions as
JSON, with the wizard's rules and service calls: a dry run (safety checks, then the
preview recorded as a dry-run restore) and "Execute restore" (the tenant's name typed
exactly, then the start seam, gated by the ``restore.execute`` control before any row,
job or provider call exists)."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask_login import current_user
from marshmallow import validate

from tenantpilot.sdk import (ApiBlueprint, ApiId, ApiText, RunSummarySchema, api_field_errors, api_problem,
                             api_refuse_unstarted, hookimpl,
                             run_summary, tenant_required)
from . import service

bp = ApiBlueprint("restore_api", __name__, url_prefix="/tenants/<int:tenant_id>/restore", tag="Restore",
                  description="Restore a backup set (or some of its items) onto its tenant: dry run, then execute.")
MAX_ITEMS = 10_000


class SelectionSchema(ma.Schema):
    backup_set_id = ApiId(required=True, metadata={"description": "A backup set of this tenant."})
    scope = ma.fields.String(load_default="all", validate=validate.OneOf(("all", "selected")),
                             metadata={"description": "all (every item of the backup set) | selected (item_ids)"})
    item_ids = ma.fields.List(ApiId(), load_default=list, validate=validate.Length(max=MAX_ITEMS),
                              metadata={"description": "Backup item ids, for scope `selected`."})

    @ma.validates_schema
    def _items_for_selected(self, data, **kw):
        if data.get("scope") == "selected" and not data.get("item_ids"):
            raise ma.ValidationError("Choose at least one item to restore.", "item_ids")


class ExecuteSchema(SelectionSchema):
    confirmation = ApiText(max_length=200, required=True,
                           metadata={"description": "The tenant's name, typed exactly (as the wizard asks)."})


class CheckSchema(ma.Schema):
    key = ma.fields.String(required=True)
    label = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "ok | warn | fail"})
    message = ma.fields.String(required=True)


class ChangeSchema(ma.Schema):
    path = ma.fields.String(required=True)
    current = ma.fields.String(allow_none=True, metadata={"description": "JSON of the current value (null: absent)."})
    backup = ma.fields.String(allow_none=True, metadata={"description": "JSON of the backup's value (null: absent)."})


class PreviewItemSchema(ma.Schema):
    backup_item_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    policy_type = ma.fields.String(required=True)
    action = ma.fields.String(required=True, metadata={"description": "create | update | unchanged | unknown"})
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema), required=True)
    error = ma.fields.String(allow_none=True)


class DryRunSchema(ma.Schema):
    restore_run_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"description": "dry_run"})
    backup_set_id = ma.fields.Integer(required=True)
    scope = ma.fields.String(required=True)
    item_count = ma.fields.Integer(required=True)
    would_change = ma.fields.Integer(required=True, metadata={"description": "Items a restore would create or update."})
    checks = ma.fields.List(ma.fields.Nested(CheckSchema), required=True)
    items = ma.fields.List(ma.fields.Nested(PreviewItemSchema), required=True)
    page_url = ma.fields.String(required=True, metadata={"description": "The restore run's page."})


class ExecuteResultSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "started | deduped"})
    message = ma.fields.String(required=True)
    restore_run_id = ma.fields.Integer(allow_none=True)
    page_url = ma.fields.String(allow_none=True, metadata={"description": "The restore run's page."})
    run = ma.fields.Nested(RunSummarySchema, required=True)


def _require_restore_capability() -> None:
    """tenant.manage + restore.execute, as every wizard step (after the 404 for non-members)."""
    if not set(service.EXECUTE_CAPABILITIES) <= g.membership.capabilities:
        api_problem(403, detail="Restores need the capabilities " + " and ".join(service.EXECUTE_CAPABILITIES) + ".")


def _selection(tenant_id: int, body: dict):
    backup = service.backup_or_404(tenant_id, body["backup_set_id"])
    return backup, service.selected_items(backup, body["scope"], body["item_ids"])


def _check(c) -> dict:
    return {"key": c.key, "label": c.label, "status": c.status, "message": c.message}


def _page_url(tenant_id: int, restore_run_id: int) -> str:
    return url_for("restore_admin.restore_run", tenant_id=tenant_id, restore_run_id=restore_run_id)


@bp.route("/dry-run", methods=["POST"])
@tenant_required("tenant.view")
@bp.arguments(SelectionSchema)
@bp.response(201, DryRunSchema)
def dry_run(tenant_id: int, body: dict):
    """Record a dry run: each item's backup payload against the provider's current state.

    The wizard's safety checks first (a failed one is a 409 `safety-check-failed`). Applies
    nothing; 403 without tenant.manage + restore.execute."""
    _require_restore_capability()
    backup, items = _selection(tenant_id, body)
    checks = service.safety_checks(g.tenant, backup, items)
    if service.blocking(checks):
        api_problem(409, "safety-check-failed", "A safety check failed",
                    "; ".join(c.message for c in checks if c.status == "fail"), checks=[_check(c) for c in checks])
    rr = service.record_dry_run(g.tenant, backup, items, body["scope"], current_user)
    rows = rr.items
    return {"restore_run_id": rr.id, "kind": rr.kind, "backup_set_id": backup.id, "scope": rr.scope,
            "item_count": rr.item_count, "would_change": sum(r.preview_action in ("create", "update") for r in rows),
            "checks": [_check(c) for c in checks],
            "items": [{"backup_item_id": r.backup_item_id, "name": r.name, "policy_type": r.policy_type,
                       "action": r.preview_action, "changes": list(r.preview_changes or []), "error": r.message}
                      for r in rows],
            "page_url": _page_url(tenant_id, rr.id)}


@bp.route("/execute", methods=["POST"])
@tenant_required("tenant.view")
@bp.arguments(ExecuteSchema)
@bp.response(201, ExecuteResultSchema, description="Started.")
@bp.alt_response(200, schema=ExecuteResultSchema, description="Already queued: the active restore (deduped).")
def execute(tenant_id: int, body: dict):
    """Execute restore: apply the backup's items to the tenant through its provider.

    The tenant's name typed exactly (else 422 naming `confirmation`), then the start seam:
    409 `paused` when the restore.execute control is paused (nothing is created and the
    provider is not called); 403 without tenant.manage + restore.execute."""
    _require_restore_capability()
    backup, items = _selection(tenant_id, body)
    if body["confirmation"].strip() != g.tenant.name:
        api_field_errors({"confirmation": f"Type the tenant name exactly as shown: {g.tenant.name}"})
    result, rr = service.start_restore(g.tenant, backup, items, body["scope"], current_user, source="api")
    api_refuse_unstarted(result)
    if rr is None:
        message = result.message
    elif result.status == "started":
        message = f"Restore #{rr.id} started (operation run #{result.run.id})."
    else:
        message = f"Restore #{rr.id} is already queued (operation run #{result.run.id})."
    return ({"status": result.status, "message": message, "restore_run_id": rr.id if rr else None,
             "page_url": _page_url(tenant_id, rr.id) if rr else None, "run": run_summary(result.run, "admin")},
            201 if result.status == "started" else 200)


@hookimpl
def tenantpilot_register_api_blueprints(app, plane):
    return bp if plane == "admin" else None
