"""Sign-in shared by both planes: same form, same checks, plane-specific model and audit."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import login_user
from sqlalchemy import select

from .. import audit
from ..actors import Actor
from ..extensions import db
from .forms import LoginForm
from .safe_redirect import safe_next

PLANES = {
    # plane: (actor kind, audit prefix, heading, hint)
    "system": ("platform", "platform.login", "Platform operator sign-in",
               "For TenantPilot staff. Customer admins sign in at /admin."),
    "admin": ("human", "tenant.login", "Sign in", "Manage your workspaces and tenants."),
}


def login_view(plane: str, model, home_endpoint: str):
    """GET shows the form; POST checks the credentials, audits the attempt (never the
    password) and signs in to this plane only."""
    kind, prefix, heading, hint = PLANES[plane]
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db.session.execute(select(model).filter_by(email=email)).scalar_one_or_none()
        if user is None or not user.is_active or not user.check_password(form.password.data):
            audit.record(f"{prefix}.failed", actor=Actor(kind, user.id if user else None,
                                                         user.name if user else "unknown", email),
                         status="failed", summary="Sign-in failed", metadata={"email_known": user is not None})
            form.password.errors.append("E-mail or password is incorrect.")
        else:
            login_user(user)
            audit.record(f"{prefix}.succeeded", actor=Actor(kind, user.id, user.name, user.email), summary="Sign-in")
            return redirect(safe_next(request.args.get("next"), f"/{plane}", url_for(home_endpoint)))
    status = 422 if request.method == "POST" else 200
    return render_template("login.html", form=form, layout=f"{plane}/layout.html", heading=heading,
                           hint=hint), status
