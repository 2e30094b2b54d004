"""Sign-in, sign-out and the account page, shared by both planes: same forms, same checks,
plane-specific model and audit."""
from __future__ import annotations

import secrets

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .. import audit, sessions
from ..actors import Actor
from ..extensions import db
from .forms import EmptyForm, LoginForm, PasswordChangeForm
from .safe_redirect import safe_next

PLANES = {
    # plane: (actor kind, audit prefix, heading, hint)
    "system": ("platform", "platform", "Platform operator sign-in",
               "For TenantPilot staff. Customer admins sign in at /admin."),
    "admin": ("human", "tenant", "Sign in", "Manage your workspaces and tenants."),
}
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    """A hash of the same method and cost as real ones: an unknown e-mail is answered
    after the same work as a wrong password, so timing does not reveal who has an account."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def _typed_email() -> str:
    return (request.form.get("email") or "").strip().lower()[:255]


# (config key, key function) of each sign-in limit; applied in app._rate_limits.
LOGIN_LIMITS = (
    ("TENANTPILOT_LOGIN_RATE_LIMIT", lambda: f"login|{request.path}|{request.remote_addr}|{_typed_email()}"),
    ("TENANTPILOT_LOGIN_IP_RATE_LIMIT", lambda: f"login-ip|{request.path}|{request.remote_addr}"),
    ("TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT", lambda: f"login-account|{request.path}|{_typed_email()}"),
)


def login_view(plane: str, model, home_endpoint: str):
    """GET shows the form; POST checks the credentials, audits the attempt (never the
    password) and starts a new server-side session on this plane only."""
    kind, prefix, heading, hint = PLANES[plane]
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db.session.execute(select(model).filter_by(email=email)).scalar_one_or_none()
        # Always one hash check, whoever asks (known, unknown or inactive).
        password_ok = check_password_hash(user.password_hash if user else _dummy_hash(), form.password.data)
        if user is None or not user.is_active or not password_ok:
            audit.record(f"{prefix}.login.failed", actor=Actor(kind, user.id if user else None,
                                                               user.name if user else "unknown", email),
                         status="failed", summary="Sign-in failed", metadata={"email_known": user is not None})
            form.password.errors.append("E-mail or password is incorrect.")
        else:
            sessions.start(plane, user)
            login_user(user)
            audit.record(f"{prefix}.login.succeeded", actor=Actor(kind, user.id, user.name, user.email),
                         summary="Sign-in")
            return redirect(safe_next(request.args.get("next"), f"/{plane}", url_for(home_endpoint)))
    status = 422 if request.method == "POST" else 200
    return render_template("login.html", form=form, layout=f"{plane}/layout.html", heading=heading,
                           hint=hint), status


def logout_view(plane: str, actor: Actor):
    """Ends this browser's session (server side too: the old cookie no longer works)."""
    if EmptyForm().validate_on_submit() and current_user.is_authenticated:
        kind, prefix, *_ = PLANES[plane]
        audit.record(f"{prefix}.logout", actor=actor, summary="Sign-out")
        logout_user()
        sessions.end_current()
    return redirect(url_for(f"{plane}.login"))


def account_view(plane: str, actor_for):
    """The account page: change password (ends every other session) and the list of
    live sessions with "Sign out everywhere"."""
    kind, prefix, *_ = PLANES[plane]
    form = PasswordChangeForm()
    if request.method == "POST" and form.validate_on_submit():
        if not current_user.check_password(form.current_password.data):
            form.current_password.errors.append("This is not your current password.")
        else:
            user = current_user._get_current_object()
            user.set_password(form.new_password.data)
            db.session.commit()
            ended = sessions.end_all(plane, user.id)
            sessions.start(plane, user)  # this browser stays signed in, on a new session
            login_user(user)
            audit.record(f"{prefix}.password.changed", actor=actor_for(user), target=(f"{kind}_user", user.id, None),
                         summary="Password changed", metadata={"sessions_ended": ended})
            flash("Password changed. Every other session of yours has been signed out.", "info")
            return redirect(url_for(f"{plane}.account"))
    return render_template("account.html", form=form, empty_form=EmptyForm(), layout=f"{plane}/layout.html",
                           sessions=sessions.active(plane, current_user.id), current_sid=sessions.current_id(),
                           revoke_url=url_for(f"{plane}.sign_out_everywhere")), (
        422 if request.method == "POST" else 200)


def sign_out_everywhere_view(plane: str, actor: Actor):
    if not EmptyForm().validate_on_submit():
        return redirect(url_for(f"{plane}.account"))
    kind, prefix, *_ = PLANES[plane]
    ended = sessions.end_all(plane, current_user.id)
    audit.record(f"{prefix}.sessions.revoked_all", actor=actor, summary="Signed out everywhere",
                 metadata={"sessions_ended": ended})
    logout_user()
    sessions.end_current()
    return redirect(url_for(f"{plane}.login"))
