"""The transactional outbox for after-commit effects (``tenantpilot_run_completed``).

The transaction that completes a run also inserts one ``outbox`` row per implementation
of the hook (``record_run_completed``), so the effects exist exactly when the completion
does. Right after the commit the same process delivers them (``deliver_run``); a row that
a dead process left pending, or whose implementation raised, is delivered again by the
scheduled ``ops.deliver_outbox`` job, with backoff, up to ``MAX_ATTEMPTS`` times.

Delivery is at-least-once: an implementation can be called again for the same run after
a crash between its own commit and the row's ``delivered`` mark, so every implementation
must be idempotent (the built-ins check for what they already wrote). A row is claimed
with a conditional UPDATE before delivery, so two processes never deliver it at once.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from .extensions import db
from .models import OperationRun, OutboxMessage
from .timeutil import utcnow

log = logging.getLogger("tenantpilot.outbox")
RUN_COMPLETED = "run_completed"
CLAIM_SECONDS = 120  # a delivery that takes longer may be claimed again
MAX_ATTEMPTS = 8
RETRY_AFTER_SECONDS = 15  # a pending row younger than this belongs to the process that just committed it


def _pm():
    return current_app.extensions["tenantpilot"].pm


def record_run_completed(run: OperationRun) -> None:
    """In the completing transaction: one pending row per hook implementation."""
    now = utcnow()
    for impl in _pm().hook.tenantpilot_run_completed.get_hookimpls():
        db.session.add(OutboxMessage(topic=RUN_COMPLETED, run_id=run.id, plugin=impl.plugin_name, status="pending",
                                     attempts=0, created_at=now, next_attempt_at=now))


def _claim(message_id: int, now) -> bool:
    res = db.session.execute(
        update(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.status == "pending",
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=OutboxMessage.attempts + 1))
    db.session.commit()
    return res.rowcount == 1


def _caller(plugin_name: str):
    """The hook caller of one plugin's implementation (through pluggy, so wrappers and
    ordering keep their meaning inside it)."""
    pm = _pm()
    others = [p for name, p in pm.list_name_plugin() if name != plugin_name]
    return pm.subset_hook_caller("tenantpilot_run_completed", remove_plugins=others)


def deliver(message_id: int) -> bool:
    """Deliver one row if it can be claimed; True when it was delivered now."""
    now = utcnow()
    if not _claim(message_id, now):
        return False
    message = db.session.get(OutboxMessage, message_id)
    run = db.session.get(OperationRun, message.run_id)
    try:
        if run is not None and any(name == message.plugin for name, _ in _pm().list_name_plugin()):
            _caller(message.plugin)(run=run)
    except Exception as exc:
        db.session.rollback()
        log.exception("run_completed hook of %s failed for run %s", message.plugin, message.run_id)
        message = db.session.get(OutboxMessage, message_id)
        gave_up = message.attempts >= MAX_ATTEMPTS
        message.status = "failed" if gave_up else "pending"
        message.last_error = f"{type(exc).__name__}"[:200]
        message.claimed_until = None
        message.next_attempt_at = utcnow() + timedelta(seconds=RETRY_AFTER_SECONDS * 2 ** min(message.attempts, 8))
        db.session.commit()
        return False
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                       .values(status="delivered", delivered_at=utcnow(), claimed_until=None))
    db.session.commit()
    return True


def deliver_run(run_id: int) -> int:
    """Right after the completing commit, in the process that committed it."""
    ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.run_id == run_id, OutboxMessage.topic == RUN_COMPLETED, OutboxMessage.status == "pending")
        .order_by(OutboxMessage.id)).all()
    return sum(deliver(i) for i in ids)


def deliver_due(limit: int = 500) -> int:
    """Scheduled: rows left pending by a process that died, or due for a retry."""
    now = utcnow()
    ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
        OutboxMessage.created_at <= now - timedelta(seconds=RETRY_AFTER_SECONDS),
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.id).limit(limit)).all()
    return sum(deliver(i) for i in ids)
