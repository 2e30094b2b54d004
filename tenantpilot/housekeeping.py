"""Core plugin: periodic housekeeping of the run ledger."""
from __future__ import annotations

from . import sessions
from .api import ScheduledJob
from .control_service import run_expiry_job
from .hookspecs import hookimpl
from .jobs import reap_abandoned_jobs
from .queue import enqueue_due_scheduled_jobs


@hookimpl
def tenantpilot_register_scheduled_jobs(app):
    return [
        # Finds jobs whose worker died (RQ started-job registry); their tenants fail and
        # the run still completes.
        ScheduledJob("ops.reap_abandoned_jobs", interval_seconds=30, func=reap_abandoned_jobs),
        # RQ retries with an interval (alert deliveries) wait in the ScheduledJobRegistry;
        # this puts the due ones back on their queue.
        ScheduledJob("ops.enqueue_scheduled_jobs", interval_seconds=5, func=enqueue_due_scheduled_jobs),
        # Expired control pauses: the evaluator already ignores them; this deletes them and
        # writes operational_control.expired (SPEC 4).
        ScheduledJob("ops.expire_control_pauses", interval_seconds=60, func=run_expiry_job),
        # Sign-in sessions that can no longer be used (revoked, idle, too old).
        ScheduledJob("auth.prune_sessions", interval_seconds=3600, func=sessions.prune),
    ]
