"""/admin/api/v1/tenants: the tenants a tenant-plane token can reach (the tenant list
of /admin, every workspace of the owner), and one tenant by id (404 for non-members, as
the pages)."""
from __future__ import annotations

import marshmallow as ma
from flask import g
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import Membership, Tenant, Workspace
from ..planes import tenant_required
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
