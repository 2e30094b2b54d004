"""The sanitized diagnostic bundle of one tenant (SPEC 5, "Open support diagnostics").

A bundle is what a support engineer needs to triage a tenant without being handed its
data: the tenant's status, its provider connection's health, its last runs with their
sanitized failures and its open findings by severity. It is built from an allow-list of
fields, never by copying rows: no secrets or secret references, no connection settings,
no provider error messages or payloads, no e-mail addresses, no user or tenant names.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from tenantpilot.sdk import (Membership, OperationRun, Tenant, User, check_provider_connection, db, iso_utc,
                             provider_connection, registered_providers, safe_message, safe_reason, utcnow)


log = logging.getLogger("tenantpilot.support_diagnostics")
RUN_LIMIT = 10
FAILURES_PER_RUN = 10  # a run keeps up to 100; the first few are enough to triage


def build(tenant: Tenant, *, check_provider: bool = True) -> dict[str, Any]:
    """The bundle of ``tenant`` as plain data. With ``check_provider`` the connection is
    checked live first (``check_provider_connection``, which stores the new health);
    otherwise, or if the check itself breaks, the stored health is reported."""
    return {
        "generated_at": utcnow(),
        "tenant": {"id": tenant.id, "external_id": tenant.external_id, "status": tenant.status,
                   "created_at": tenant.created_at},
        "provider_connection": _provider(tenant.id, check_provider),
        "runs": _runs(tenant),
        "findings": _findings(tenant.id),
    }


def section_counts(bundle: dict[str, Any]) -> dict[str, int]:
    """How many items each section holds: what the audit event may say about a bundle
    (never its contents)."""
    counts = {
        "tenant": 1,
        "provider_connection": int(bundle["provider_connection"]["connected"]),
        "runs": len(bundle["runs"]),
        "run_failures": sum(len(r["failures"]) for r in bundle["runs"]),
    }
    if bundle["findings"].get("open_by_severity") is not None:
        counts["open_findings"] = bundle["findings"]["open_total"]
    return counts


def as_json(bundle: dict[str, Any]) -> str:
    """The bundle as indented JSON (timestamps ISO 8601 with offset, like every export), to
    paste into a support ticket."""
    return json.dumps(bundle, indent=2, default=lambda v: iso_utc(v) if isinstance(v, datetime) else str(v))


def _provider(tenant_id: int, check: bool) -> dict[str, Any]:
    conn = provider_connection(tenant_id)
    if conn is None:
        return {"connected": False}
    checked = False
    if check:
        try:
            conn = check_provider_connection(tenant_id) or conn
            checked = True
        except Exception:  # the bundle must still open when the check itself breaks
            log.exception("support diagnostics: provider check failed for tenant %s", tenant_id)
            db.session.rollback()
            conn = provider_connection(tenant_id)
            if conn is None:
                return {"connected": False}
    provider = registered_providers().get(conn.provider)
    return {
        "connected": True,
        "provider": conn.provider,
        "label": provider.label if provider else None,
        "installed": provider is not None,
        "health": conn.health,
        "checked_now": checked,
        "last_checked_at": conn.last_checked_at,
        # The code only: a provider's message may quote what the vendor answered.
        "last_error_code": safe_reason(conn.last_error_code) if conn.last_error_code else None,
    }


def _runs(tenant: Tenant) -> list[dict[str, Any]]:
    types = current_app.extensions["tenantpilot"].registry.operation_types
    runs = db.session.scalars(select(OperationRun).where(OperationRun.tenant_id == tenant.id)
                              .order_by(OperationRun.id.desc()).limit(RUN_LIMIT)).all()
    scrub = _name_scrubber(tenant, runs)
    out = []
    for run in runs:
        op = types.get(run.type)
        # Scrubbed again on the way out: rows written before the ledger scrubbed
        # messages, or by a bug, must not leak through the bundle.
        failures = [{"reason_code": safe_reason(f.get("reason_code")), "message": scrub(safe_message(f.get("message")))}
                    for f in (run.failure_summary or [])
                    if isinstance(f, dict) and f.get("tenant_id") in (None, tenant.id)]
        out.append({
            "id": run.id,
            "type": run.type,
            "label": op.label if op else run.type,
            "status": run.status,
            "outcome": run.outcome,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "summary_counts": {str(k)[:60]: v for k, v in (run.summary_counts or {}).items()
                               if isinstance(v, int) and not isinstance(v, bool)},
            "failures_total": len(failures),
            "failures": failures[:FAILURES_PER_RUN],
        })
    return out


def _name_scrubber(tenant: Tenant, runs):
    """Replaces the names of the people this tenant's runs could mention (the runs'
    initiators and the workspace's members) with ``[user]``. A message should never
    name anyone; this catches the ones that do, which a pattern cannot."""
    names = {r.initiator_name for r in runs if r.initiator_name}
    names |= set(db.session.scalars(select(User.name).join(Membership, Membership.user_id == User.id)
                                    .where(Membership.workspace_id == tenant.workspace_id)))
    names = sorted((n.strip() for n in names if n and len(n.strip()) >= 3), key=len, reverse=True)
    if not names:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(n) for n in names), re.I)
    return lambda text: pattern.sub("[user]", text)


def _findings(tenant_id: int) -> dict[str, Any]:
    """Open findings by severity, when the findings plugin is part of this app."""
    try:  # an optional plugin: the core and this plugin work without it
        from tenantpilot_findings import plugin as findings_plugin
        from tenantpilot_findings.models import OPEN_STATUSES, SEVERITIES, Finding
    except ImportError:
        return {"installed": False}
    if not current_app.extensions["tenantpilot"].pm.is_registered(findings_plugin):
        return {"installed": False}  # installed in the environment but not loaded by this app
    try:
        with db.session.begin_nested():  # one indexed query; a missing table must not break the action
            rows = db.session.execute(
                select(Finding.severity, func.count()).where(Finding.tenant_id == tenant_id,
                                                             Finding.status.in_(OPEN_STATUSES))
                .group_by(Finding.severity)).all()
    except SQLAlchemyError:
        log.exception("support diagnostics: findings query failed for tenant %s", tenant_id)
        return {"installed": True, "available": False}
    by_severity = {s: 0 for s in SEVERITIES}
    for severity, n in rows:
        key = severity if severity in by_severity else "other"
        by_severity[key] = by_severity.get(key, 0) + int(n)
    return {"installed": True, "available": True, "open_by_severity": by_severity,
            "open_total": sum(by_severity.values())}
