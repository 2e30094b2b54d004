"""The tenant plane (/admin): sign-in, workspace switcher, tenant list, tenant home."""
from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from sqlalchemy import select

from ..extensions import db
from ..models import Membership, OperationRun, Tenant, User, Workspace
from ..planes import tenant_required
from .auth import login_view
from .forms import EmptyForm

bp = Blueprint("admin", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    return login_view("admin", User, "admin.index")


@bp.post("/logout")
def logout():
    if EmptyForm().validate_on_submit() and current_user.is_authenticated:
        logout_user()
        session.clear()
    return redirect(url_for("admin.login"))


def _memberships():
    return db.session.execute(
        select(Membership).join(Workspace).where(Membership.user_id == current_user.id).order_by(Workspace.name)
    ).scalars().all()


@bp.get("/")
@login_required
def index():
    memberships = _memberships()
    if not memberships:
        return render_template("admin/index.html", memberships=[], current=None, tenants=[], form=EmptyForm())
    by_ws = {m.workspace_id: m for m in memberships}
    current = by_ws.get(session.get("workspace_id")) or memberships[0]
    tenants = db.session.execute(
        select(Tenant).where(Tenant.workspace_id == current.workspace_id, Tenant.is_platform.is_(False))
        .order_by(Tenant.name)
    ).scalars().all()
    return render_template("admin/index.html", memberships=memberships, current=current, tenants=tenants,
                           form=EmptyForm())


@bp.post("/workspace")
@login_required
def switch_workspace():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    workspace_id = request.form.get("workspace_id", type=int)
    if workspace_id is None or current_user.membership_for(workspace_id) is None:
        abort(404)  # never confirm that a workspace one is not a member of exists
    session["workspace_id"] = workspace_id
    return redirect(url_for("admin.index"))


@bp.get("/t/<int:tenant_id>/")
@tenant_required("tenant.view")
def tenant_home(tenant_id: int):
    runs = db.session.execute(
        select(OperationRun).where(OperationRun.tenant_id == tenant_id).order_by(OperationRun.id.desc()).limit(10)
    ).scalars().all()
    return render_template("admin/tenant_home.html", tenant=g.tenant, membership=g.membership, runs=runs)
