"""Core plugin: tells a run's initiator that it finished (in-app notification)."""
from __future__ import annotations

from flask_babel import ngettext
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


def body(run) -> str:
    """"Run #7: 3 tenants succeeded, 1 tenant failed, 2 tenants skipped." Tenant counts,
    named as such: a run's item counts ("Findings skipped") are on its page."""
    succeeded = run.tenants_done - run.tenants_failed - run.tenants_skipped
    parts = [ngettext("%(count)s tenant succeeded", "%(count)s tenants succeeded", succeeded, count=f"{succeeded:,}"),
             ngettext("%(count)s tenant failed", "%(count)s tenants failed", run.tenants_failed,
                      count=f"{run.tenants_failed:,}"),
             ngettext("%(count)s tenant skipped", "%(count)s tenants skipped", run.tenants_skipped,
                      count=f"{run.tenants_skipped:,}")]
    return f"Run #{run.id}: {', '.join(parts)}."


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
        body=body(run),
        run_id=run.id,
    ))
    db.session.commit()
