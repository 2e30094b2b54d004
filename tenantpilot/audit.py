"""The audit recorder (SPEC 8): append-only and fail-safe.

record() writes inside a SAVEPOINT of the caller's session, so an audit error can never
poison the caller's transaction, and (with commit=False) the audit row commits or rolls
back together with the change it describes.
"""
from __future__ import annotations

import logging

from flask import has_request_context, request

from .actors import Actor
from .extensions import db
from .models import AuditLog
from .sanitize import safe_message, safe_metadata

log = logging.getLogger("tenantpilot.audit")
STATUSES = ("success", "blocked", "failed")


def record(
    action: str,
    *,
    actor: Actor | None = None,
    workspace_id: int | None = None,
    tenant_id: int | None = None,
    target: tuple | None = None,  # (type, id, label)
    status: str = "success",
    summary: str = "",
    metadata: dict | None = None,
    commit: bool = True,
) -> AuditLog | None:
    """Append one audit event. Platform-plane events pass no workspace/tenant (both null).
    Returns the row, or None if recording failed (logged, never raised)."""
    actor = actor or Actor.system()
    try:
        if status not in STATUSES:
            raise ValueError(f"unknown audit status {status!r}")
        target_type, target_id, target_label = target or (None, None, None)
        row = AuditLog(
            action=action,
            actor_type=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            actor_email=actor.email,
            workspace_id=workspace_id,
            tenant_id=tenant_id,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            target_label=None if target_label is None else safe_message(target_label, 200),
            status=status,
            summary=safe_message(summary, 500),
            meta=safe_metadata(metadata or {}),
            ip=request.remote_addr if has_request_context() else None,
            user_agent=(request.user_agent.string or "")[:300] if has_request_context() else None,
        )
        with db.session.begin_nested():
            db.session.add(row)
        if commit:
            db.session.commit()
        return row
    except Exception:  # fail-safe: auditing must never break the audited operation
        log.exception("audit write failed for action %s", action)
        return None
