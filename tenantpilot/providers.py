"""The provider boundary (SPEC 5): a tenant's provider connection and the client built
from it. Provider implementations are plugins (``tenantpilot_register_providers``); this
module only knows the interface of ``tenantpilot.api``.

Secrets: a connection stores a *reference*, resolved here, at the moment a client is
built, into ``ProviderConnectionInfo.secret`` (kept out of its repr) and goes nowhere
else: not into the database, logs, audit metadata, run context or pages.

A reference reaches only what the operator deliberately exposed to tenant managers:

- ``env:TENANTPILOT_PROVIDER_SECRET_<NAME>``: environment variables with that prefix
  (never ``SECRET_KEY``, ``DATABASE_URL`` or anything else of the process);
- ``file:<name>`` or ``file:<secrets dir>/<name>``: a file inside
  ``TENANTPILOT_PROVIDER_SECRETS_DIR`` (default ``/run/secrets``), after resolving the
  path (no ``..``, no symlink that leads outside).

Anything else is refused when the connection is saved (one field error) and again when it
is used. At use time every failure gives the same message, so a manager cannot probe
which variables or files exist.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from . import audit
from .actors import Actor
from .api import Provider, ProviderClient, ProviderConnectionInfo, ProviderError
from .extensions import db
from .models import ProviderConnection, Tenant
from .sanitize import safe_message
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.providers")
ENV_PREFIX = "TENANTPILOT_PROVIDER_SECRET_"
_ENV_REF = re.compile(r"^env:(" + ENV_PREFIX + r"[A-Z0-9_]{1,100})$")
_FILE_REF = re.compile(r"^file:([A-Za-z0-9._/-]{1,250})$")
UNREADABLE = "The connection's secret could not be read from its reference."
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def registered() -> dict[str, Provider]:
    return dict(current_app.extensions["tenantpilot"].registry.providers)


def connection_for(tenant_id: int) -> ProviderConnection | None:
    return db.session.scalars(select(ProviderConnection).where(ProviderConnection.tenant_id == tenant_id)).first()


def provider_for(tenant_id: int) -> Provider | None:
    conn = connection_for(tenant_id)
    return registered().get(conn.provider) if conn else None


def secrets_dir() -> Path:
    return Path(current_app.config.get("TENANTPILOT_PROVIDER_SECRETS_DIR") or "/run/secrets")


def secret_ref_help() -> str:
    return (f"Use env:{ENV_PREFIX}<NAME> (an environment variable the operator set for this) or "
            f"file:<name> (a file in {secrets_dir()}); never the secret itself.")


def _confined_file(relative: str) -> Path | None:
    """The secrets-dir file a ``file:`` reference names, or None if it would leave it."""
    base = secrets_dir().resolve()
    raw = Path(relative)
    if ".." in raw.parts:
        return None
    candidate = raw if raw.is_absolute() else base / raw
    resolved = candidate.resolve()  # follows symlinks: a link out of the folder is refused
    if resolved == base or not resolved.is_relative_to(base):
        return None
    return resolved


def secret_ref_allowed(ref: str) -> bool:
    """Is ``ref`` a reference tenant managers may use? Syntax and confinement only: it
    never looks at whether the variable or file exists."""
    if _ENV_REF.match(ref):
        return True
    m = _FILE_REF.match(ref)
    return bool(m) and _confined_file(m.group(1)) is not None


def resolve_secret(ref: str | None) -> str | None:
    """The secret a reference points at. Every failure (not allowed, missing, unreadable,
    empty) raises the same ProviderError, so the answer does not reveal existence."""
    if not ref:
        return None
    value = None
    if m := _ENV_REF.match(ref):
        value = os.environ.get(m.group(1))
    elif (m := _FILE_REF.match(ref)) and (path := _confined_file(m.group(1))) is not None:
        try:
            value = path.read_text().strip() if path.is_file() else None
        except (OSError, UnicodeDecodeError):
            value = None
    if not value:
        raise ProviderError("misconfigured", UNREADABLE)
    return value


def client_for(tenant_id: int) -> ProviderClient:
    """The provider client of a tenant. Raises ProviderError("not_connected") when the
    tenant has no connection or its provider is not installed."""
    conn = connection_for(tenant_id)
    if conn is None:
        raise ProviderError("not_connected", "This tenant has no provider connection.")
    provider = registered().get(conn.provider)
    if provider is None:
        raise ProviderError("not_connected", f"The provider {conn.provider!r} of this tenant is not installed.")
    tenant = db.session.get(Tenant, tenant_id)
    needs_secret = any(f.kind == "secret_ref" for f in provider.fields)
    info = ProviderConnectionInfo(
        tenant_id=tenant_id,
        tenant_external_id=tenant.external_id,
        provider=conn.provider,
        settings=dict(conn.settings or {}),
        secret=resolve_secret(conn.secret_ref) if needs_secret else None,
    )
    return provider.factory(info)


def validate_settings(provider: Provider, values: dict[str, str]) -> dict[str, str]:
    """Field errors by field name for a connection form ({} when valid)."""
    errors = {}
    for f in provider.fields:
        value = (values.get(f.name) or "").strip()
        if not value:
            if f.required:
                errors[f.name] = f"{f.label} is required."
            continue
        if f.kind == "guid" and not GUID_RE.match(value):
            errors[f.name] = f"{f.label} must be a GUID like 00000000-0000-0000-0000-000000000000."
        elif f.kind == "secret_ref" and not secret_ref_allowed(value):
            errors[f.name] = secret_ref_help()
        elif len(value) > 250:
            errors[f.name] = f"{f.label} must be at most 250 characters."
    return errors


def save_connection(tenant: Tenant, provider: Provider, values: dict[str, str], actor: Actor) -> ProviderConnection:
    """Create or replace the tenant's connection (values already validated); audited
    with the provider name and the setting *names* only. A blank secret_ref field keeps
    the stored reference, so the page never has to show it back."""
    conn = connection_for(tenant.id)
    created = conn is None
    if created:
        conn = ProviderConnection(tenant_id=tenant.id, provider=provider.name, settings={})
        db.session.add(conn)
    secret_field = next((f for f in provider.fields if f.kind == "secret_ref"), None)
    settings = {f.name: (values.get(f.name) or "").strip() for f in provider.fields if f.kind != "secret_ref"}
    new_ref = (values.get(secret_field.name) or "").strip() if secret_field else ""
    if conn.provider != provider.name or secret_field is None:
        conn.secret_ref = None
    if new_ref:
        conn.secret_ref = new_ref
    conn.provider = provider.name
    conn.settings = {k: v for k, v in settings.items() if v}
    conn.health, conn.last_error_code, conn.last_error_message = "unverified", None, None
    conn.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "provider_connection.created" if created else "provider_connection.updated",
        actor=actor, workspace_id=tenant.workspace_id, tenant_id=tenant.id,
        target=("provider_connection", conn.id, provider.label),
        summary=f"Provider connection {'created' if created else 'updated'}: {provider.label}",
        metadata={"provider": provider.name, "settings_set": sorted(conn.settings),
                  "vault_reference_set": bool(conn.secret_ref)},
        commit=False,
    )
    db.session.commit()
    return conn


def check_connection(tenant_id: int) -> ProviderConnection | None:
    """Ask the provider something harmless (the granted permissions) and record the
    connection's health. Returns the connection (None when there is none)."""
    conn = connection_for(tenant_id)
    if conn is None:
        return None
    try:
        client_for(tenant_id).granted_permissions()
    except ProviderError as exc:
        conn.health, conn.last_error_code, conn.last_error_message = "failing", exc.reason_code, safe_message(exc.message)
    except Exception as exc:  # a broken plugin must not break the page
        log.exception("provider check failed for tenant %s", tenant_id)
        conn.health, conn.last_error_code = "failing", "unexpected_error"
        conn.last_error_message = f"Unexpected error ({type(exc).__name__})."
    else:
        conn.health, conn.last_error_code, conn.last_error_message = "healthy", None, None
    conn.last_checked_at = utcnow()
    db.session.commit()
    return conn
