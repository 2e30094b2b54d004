"""/admin/api/v1/tenants: the tenants a tenant-plane token can reach (the tenant list
of /admin, every workspace of the owner), one tenant by id (404 for non-members, as
the pages), and one operation run of a tenant (the tenant run page), where the runs that
plugins' endpoints start point their ``url``."""
from __future__ import annotations

import marshmallow as ma
from flask import abort, g
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import Membership, OperationRun, Tenant, Workspace
from ..planes import tenant_required
from .api_schemas import RunSummarySchema, run_summary
from .apiv1 import Blueprint

bp = Blueprint("api_tenants", __name__, url_prefix="/tenants", tag="Tenants",
               description="Tenants of the workspaces the token's owner is a member of.")


class TenantSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "active | onboarding | archived"})
    workspace_id = ma.fields.Integer(required=True)
    workspace_name = ma.fields.String(required=True)
    role = ma.fields.String(required=True, metadata={"description": "The owner's role in that workspace."})
    capabilities = ma.fields.List(ma.fields.String(), required=True,
                                  metadata={"description": "What this token may do on this tenant."})


class TenantListSchema(ma.Schema):
    tenants = ma.fields.List(ma.fields.Nested(TenantSchema), required=True)


def tenant_view(tenant: Tenant, workspace: Workspace, membership) -> dict:
    return {"id": tenant.id, "name": tenant.name, "status": tenant.status, "workspace_id": workspace.id,
            "workspace_name": workspace.name, "role": membership.role,
            "capabilities": sorted(membership.capabilities)}


@bp.route("", methods=["GET"])
@bp.response(200, TenantListSchema)
def list_tenants():
    """Every tenant of every workspace the owner belongs to, by workspace and name."""
    rows = db.session.execute(
        select(Tenant, Workspace, Membership).join(Workspace, Tenant.workspace_id == Workspace.id)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == current_user.id, Tenant.is_platform.is_(False))
        .order_by(Workspace.name, Tenant.name, Tenant.id)
    ).all()
    return {"tenants": [tenant_view(t, w, current_user.membership_for(w.id)) for t, w, _m in rows]}


@bp.route("/<int:tenant_id>", methods=["GET"])
@tenant_required("tenant.view")
@bp.response(200, TenantSchema)
def get_tenant(tenant_id: int):
    """One tenant (404 when the owner is not a member of its workspace)."""
    return tenant_view(g.tenant, g.tenant.workspace, g.membership)


class RunFailureSchema(ma.Schema):
    reason_code = ma.fields.String(allow_none=True)
    message = ma.fields.String(allow_none=True)


class TenantRunSchema(RunSummarySchema):
    initiator_name = ma.fields.String(allow_none=True, metadata={"description": "Who started it (null: the system)."})
    summary_counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)
    failures = ma.fields.List(ma.fields.Nested(RunFailureSchema), required=True,
                              metadata={"description": "Sanitized failures: stable reason code and a short message."})


@bp.route("/<int:tenant_id>/runs/<int:run_id>", methods=["GET"])
@tenant_required("tenant.view")
@bp.response(200, TenantRunSchema)
def get_tenant_run(tenant_id: int, run_id: int):
    """One operation run of this tenant, as its run page shows it (404 for another tenant's run)."""
    run = db.session.get(OperationRun, run_id)
    if run is None or run.tenant_id != tenant_id:
        abort(404)
    counts = {str(k): v for k, v in (run.summary_counts or {}).items() if isinstance(v, int) and not isinstance(v, bool)}
    failures = [{"reason_code": f.get("reason_code"), "message": f.get("message")}
                for f in (run.failure_summary or []) if isinstance(f, dict)]
    return {**run_summary(run, "admin"), "initiator_name": run.initiator_name, "summary_counts": counts,
            "failures": failures}
