"""The tenant plane (/admin): sign-in, workspace switcher, tenant list, tenant home."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import providers
from ..actors import Actor
from ..extensions import db
from ..models import Membership, OperationRun, Tenant, User, Workspace
from ..planes import tenant_required
from . import notifications as notifications_ui
from .auth import account_view, login_view, logout_view, sign_out_everywhere_view
from . import inputs
from .forms import EmptyForm

bp = Blueprint("admin", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    return login_view("admin", User, "admin.index")


@bp.get("/notifications")
@login_required
def notifications():
    return notifications_ui.list_view("admin")


@bp.get("/notifications/bell")
@login_required
def bell():
    return notifications_ui.bell_view("admin")


@bp.post("/notifications/<int:notification_id>/open")
@login_required
def notification_open(notification_id: int):
    return notifications_ui.open_view("admin", notification_id)


@bp.post("/notifications/read-all")
@login_required
def notifications_read_all():
    return notifications_ui.read_all_view("admin")


@bp.post("/logout")
def logout():
    return logout_view("admin", Actor.human(current_user) if current_user.is_authenticated else None)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    return account_view("admin", Actor.human)


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    return sign_out_everywhere_view("admin", Actor.human(current_user))


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
    workspace_id = inputs.form_int("workspace_id")
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


@bp.get("/t/<int:tenant_id>/runs/<int:run_id>")
@tenant_required("tenant.view")
def tenant_run(tenant_id: int, run_id: int):
    """One operation run of this tenant, as its members see it: status, counts and the
    sanitized failures. A run of another tenant (or a platform-wide run) is a 404."""
    run = db.session.get(OperationRun, run_id)
    if run is None or run.tenant_id != tenant_id:
        abort(404)
    return render_template("admin/tenant_run.html", tenant=g.tenant, membership=g.membership, run=run)


# --- provider connection (SPEC 5, provider boundary) ------------------------------------

def _connection_page(tenant_id: int, *, chosen: str | None = None, values=None, errors=None, status=200):
    registered = providers.registered()
    conn = providers.connection_for(tenant_id)
    chosen = chosen if chosen in registered else (conn.provider if conn and conn.provider in registered
                                                   else next(iter(registered), None))
    if values is None:
        values = dict(conn.settings or {}) if conn and conn.provider == chosen else {}
        provider = registered.get(chosen)
        for f in provider.fields if provider else ():
            if not values.get(f.name) and f.default is not None:
                values[f.name] = f.initial(g.tenant)  # the provider's starting point
    return render_template("admin/connection.html", tenant=g.tenant, membership=g.membership, connection=conn,
                           providers=registered, chosen=chosen, values=values, errors=errors or {},
                           can_manage="tenant.manage" in g.membership.capabilities, form=EmptyForm(),
                           secret_ref_help=providers.secret_ref_help()), status


@bp.get("/t/<int:tenant_id>/connection")
@tenant_required("tenant.view")
def connection(tenant_id: int):
    return _connection_page(tenant_id, chosen=request.args.get("provider"))


@bp.post("/t/<int:tenant_id>/connection")
@tenant_required("tenant.manage")
def save_connection(tenant_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    provider = providers.registered().get(inputs.form_text("provider"))
    if provider is None:
        return _connection_page(tenant_id, errors={"provider": "Choose one of the installed providers."}, status=400)
    values = {f.name: inputs.form_text(f.name) for f in provider.fields}
    errors = providers.validate_settings(provider, values)
    conn = providers.connection_for(tenant_id)
    keeps_secret = conn is not None and conn.provider == provider.name and conn.secret_ref
    for f in provider.fields:  # a blank secret reference keeps the stored one
        if f.kind == "secret_ref" and keeps_secret and errors.get(f.name, "").endswith("is required."):
            errors.pop(f.name)
    if errors:
        shown = {k: v for k, v in values.items() if not any(f.name == k and f.kind == "secret_ref" for f in provider.fields)}
        return _connection_page(tenant_id, chosen=provider.name, values=shown, errors=errors, status=400)
    providers.save_connection(g.tenant, provider, values, Actor.human(current_user))
    flash(f"Provider connection saved: {provider.label}. Test it to check access.", "info")
    return redirect(url_for("admin.connection", tenant_id=tenant_id))


@bp.post("/t/<int:tenant_id>/connection/check")
@tenant_required("tenant.manage")
def check_connection(tenant_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    conn = providers.check_connection(tenant_id)
    if conn is None:
        flash("This tenant has no provider connection yet.", "error")
    elif conn.health == "healthy":
        flash("Connection healthy: the provider answered.", "info")
    else:
        flash(f"Connection failing: {conn.last_error_message}", "error")
    return redirect(url_for("admin.connection", tenant_id=tenant_id))
