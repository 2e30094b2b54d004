"""Two planes, two sessions (SPEC 1).

The platform plane lives under /system, the tenant plane under /admin. Each has its own
session cookie (name, Path and signing salt), so a cookie of one plane is simply not a
session in the other: copying it across fails the signature check. Flask-Login loads
identities per plane: "system:<id>" only ever resolves to a PlatformUser on /system and
"admin:<id>" only to a User on /admin.
"""
from __future__ import annotations

from functools import wraps

from flask import abort, g, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from flask_login import current_user

from . import sessions
from .extensions import db, login_manager
from .models import PlatformUser, User

PLANES = {
    "system": {"cookie": "tp_system_session", "path": "/system", "salt": "tenantpilot-system-session"},
    "admin": {"cookie": "tp_admin_session", "path": "/admin", "salt": "tenantpilot-admin-session"},
}


def plane_of(path: str) -> str | None:
    for name, conf in PLANES.items():
        if path == conf["path"] or path.startswith(conf["path"] + "/"):
            return name
    return None


def current_plane() -> str | None:
    return plane_of(request.path)


class PlaneSessionInterface(SecureCookieSessionInterface):
    """Cookie name, Path and salt follow the plane of the request."""

    def _conf(self):
        return PLANES.get(current_plane() or "", None)

    def open_session(self, app, request):
        if self._conf() is None:
            return None  # no session outside the planes (healthz, static)
        return super().open_session(app, request)

    def get_signing_serializer(self, app):
        # Built per call with the plane's salt: the interface is shared by all threads, so
        # it must not hold per-request state.
        if not app.secret_key:
            return None
        keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or []), app.secret_key]
        return URLSafeTimedSerializer(
            keys, salt=self._conf()["salt"], serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )

    def get_cookie_name(self, app):
        return self._conf()["cookie"]

    def get_cookie_path(self, app):
        return self._conf()["path"]

    def get_cookie_secure(self, app):
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure

    def save_session(self, app, session, response):
        if self._conf() is None:
            return
        return super().save_session(app, session, response)


@login_manager.user_loader
def load_identity(identity: str):
    plane, _, raw_id = identity.partition(":")
    if plane != current_plane() or not raw_id.isdigit():
        return None
    # A revoked, expired or pre-password-change session is no session; nor is an inactive person's.
    return sessions.load(plane, PlatformUser if plane == "system" else User, int(raw_id))


def platform_required(*capabilities: str):
    """A signed-in, active platform user holding every capability (else 403)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.can("platform.access_system_panel", *capabilities):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def tenant_and_membership(tenant_id: int):
    """(tenant with its workspace, the signed-in person's membership of that workspace or
    None) in one query — every tenant page asks; (None, None) for an unknown tenant."""
    from sqlalchemy import and_, select
    from sqlalchemy.orm import contains_eager

    from .models import Membership, Tenant

    found = db.session.execute(
        select(Tenant, Membership).join(Tenant.workspace)
        .outerjoin(Membership, and_(Membership.workspace_id == Tenant.workspace_id,
                                    Membership.user_id == current_user.id))
        .options(contains_eager(Tenant.workspace))
        .where(Tenant.id == tenant_id)).first()
    if found is None:
        return None, None
    tenant, membership = found
    if membership is not None and not isinstance(current_user._get_current_object(), User):
        # Any other identity (an API token) says itself what its owner's membership allows.
        membership = current_user.membership_for(tenant.workspace_id)
    return tenant, membership


def tenant_required(capability: str = "tenant.view"):
    """/admin/t/<tenant_id>/…: 404 for non-members and unknown or platform tenants, 403 for
    members without the capability. Members still see archived tenants (read-only history);
    the start seam refuses to start work on them. Sets g.tenant and g.membership."""

    def decorator(view):
        @wraps(view)
        def wrapped(tenant_id: int, *args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            tenant, membership = tenant_and_membership(tenant_id)
            if tenant is None or tenant.is_platform or membership is None:
                abort(404)
            if capability not in membership.capabilities:
                abort(403)
            g.tenant, g.membership = tenant, membership
            return view(tenant_id, *args, **kwargs)

        return wrapped

    return decorator
