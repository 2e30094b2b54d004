"""The tenant's "Name" tab: the name with its stray spaces shown, and a button that trims
it through the start seam (capability, control key and idempotency checked there)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_login import current_user

from tenantpilot.sdk import Actor, EmptyForm, Scope, evaluate_control, start_operation, tenant_required

from .plugin import KEY

bp = Blueprint("trim_names_admin", __name__, url_prefix="/trim-names")


@bp.get("/t/<int:tenant_id>/name")
@tenant_required("tenant.view")
def name_tab(tenant_id: int):
    name = g.tenant.name
    stripped = name.strip()
    lead = len(name) - len(name.lstrip())
    trail = len(name) - len(name.rstrip()) if stripped else 0  # a blank name is all "leading"
    return render_template("tenantpilot_trim_names/name.html", tenant=g.tenant, membership=g.membership,
                           lead=lead, trail=trail, core=stripped,
                           can_trim="tenant.manage" in g.membership.capabilities and name != stripped,
                           decision=evaluate_control(KEY, g.tenant.workspace_id), form=EmptyForm())


@bp.post("/t/<int:tenant_id>/name/trim")
@tenant_required("tenant.manage")
def trim(tenant_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    result = start_operation(KEY, scope=Scope("single_tenant", tenant_id=tenant_id), actor=Actor.human(current_user),
                             source="tenant_ui")
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    flash(result.message, "info" if result.status in ("started", "deduped") else "warning")
    return redirect(url_for(".name_tab", tenant_id=tenant_id))
