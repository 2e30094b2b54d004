"""The audit recorder (SPEC 8): append-only, fail-safe, and nothing lost.

record() writes inside a SAVEPOINT of the caller's session, so an audit error can never
poison the caller's transaction, and (with commit=False) the audit row commits or rolls
back together with the change it describes.

If the row cannot be written, the action still goes on and the row is not dropped: it is
spooled (tenantpilot.spool) when the caller's transaction commits (an action that rolled
back gets no audit row), and the scheduler replays it, in order, by its ``event_uid``, so
it lands exactly once with its original time.
"""
from __future__ import annotations

import logging
import uuid

from flask import has_request_context, request
from sqlalchemy import event, select

from . import spool
from .actors import Actor
from .extensions import db
from .models import AuditLog
from .sanitize import safe_message, safe_metadata
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.audit")
STATUSES = ("success", "blocked", "failed")
SPOOL_KIND = "audit"
_PENDING = "tenantpilot_audit_spool"


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
    Returns the row, or None when it was spooled for a later replay (logged, never
    raised). With commit=True the caller's session is committed (the action's own commit:
    its failure is the action's failure and propagates)."""
    if status not in STATUSES:  # a caller's bug must not cost the row: keep it, flagged
        log.error("audit write failed for action %s: unknown status %r (recorded as failed)", action, status)
        metadata = {**(metadata or {}), "invalid_status": str(status)[:40]}
        status = "failed"
    actor = actor or Actor.system()
    meta = safe_metadata(metadata or {})
    if actor.token:  # done through an API token: the row names it (after the redaction,
        # whose secret-key rule would hide a key called "api_token"; the label holds no secret)
        meta["api_token"] = {k: safe_metadata(v) for k, v in dict(actor.token).items()}
    target_type, target_id, target_label = target or (None, None, None)
    fields = dict(
        action=action, actor_type=actor.kind, actor_id=actor.id, actor_name=actor.name, actor_email=actor.email,
        workspace_id=workspace_id, tenant_id=tenant_id, target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        target_label=None if target_label is None else safe_message(target_label, 200),
        status=status, summary=safe_message(summary, 500), meta=meta,
        ip=request.remote_addr if has_request_context() else None,
        user_agent=(request.user_agent.string or "")[:300] if has_request_context() else None,
        recorded_at=utcnow(), event_uid=uuid.uuid4().hex,
    )
    row = AuditLog(**fields)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except Exception:  # fail-safe: auditing must never break the audited operation
        log.exception("audit write failed for action %s; spooled for replay", action)
        _spool_on_commit(fields)
        row = None
    if commit:
        db.session.commit()
    return row


def _spool_on_commit(fields: dict) -> None:
    session = db.session()
    session.info.setdefault(_PENDING, []).append(fields)
    if not session.info.get(_PENDING + "_listening"):
        event.listen(session, "after_commit", _flush_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info[_PENDING + "_listening"] = True


def _flush_pending(session) -> None:
    for fields in session.info.pop(_PENDING, []):
        spool.append(SPOOL_KIND, fields)


def _drop_pending(session) -> None:
    session.info.pop(_PENDING, None)  # the action rolled back: nothing happened to audit


def replay_one(fields: dict) -> None:
    """Insert one spooled row unless its event_uid is already there; commits."""
    from datetime import datetime

    if db.session.scalar(select(AuditLog.id).where(AuditLog.event_uid == fields["event_uid"])):
        return
    data = dict(fields)
    data["recorded_at"] = datetime.fromisoformat(data["recorded_at"])
    db.session.add(AuditLog(**data))
    db.session.commit()


def replay_spool() -> int:
    """Scheduled: write the spooled rows, in order."""
    return spool.replay(SPOOL_KIND, replay_one)
