"""Core plugin: tells a run's initiator that it finished (in-app notification)."""
from __future__ import annotations

from sqlalchemy import select

from .extensions import db
from .hookspecs import hookimpl
from .models import Notification

OUTCOME_WORDS = {
    "succeeded": "succeeded",
    "partially_succeeded": "partially succeeded",
    "failed": "failed",
    "cancelled": "was cancelled",
    "blocked": "was blocked",
}


@hookimpl
def tenantpilot_run_completed(run):
    if not (run.initiator_user_id or run.initiator_platform_user_id):
        return  # system-initiated: nobody to tell
    if db.session.scalar(select(Notification.id).where(Notification.run_id == run.id,
                                                       Notification.kind == "operations.run.completed").limit(1)):
        return  # delivered before (the outbox delivers at least once)
    label = (run.context or {}).get("operation_label", run.type)
    db.session.add(Notification(
        user_id=run.initiator_user_id,
        platform_user_id=run.initiator_platform_user_id,
        kind="operations.run.completed",
        title=f"{label} {OUTCOME_WORDS.get(run.outcome, run.outcome)}",
        body=f"Run #{run.id}: {run.tenants_done - run.tenants_failed - run.tenants_skipped} tenant(s) succeeded, "
             f"{run.tenants_failed} failed, {run.tenants_skipped} skipped.",
        run_id=run.id,
    ))
    db.session.commit()
