"""Core plugin: periodic housekeeping of the run ledger."""
from __future__ import annotations

from . import approvals, artifacts, idempotency, outbox, sessions
from .api import ScheduledJob
from .control_service import run_expiry_job
from .hookspecs import hookimpl
from .jobs import reap_abandoned_jobs
from .queue import enqueue_due_scheduled_jobs


def replay_spools() -> int:
    from . import audit, telemetry

    return audit.replay_spool() + telemetry.replay_spool()


@hookimpl
def tenantpilot_register_scheduled_jobs(app):
    return [
        # Finds jobs whose worker died (RQ started-job registry); their tenants fail and
        # the run still completes.
        ScheduledJob("ops.reap_abandoned_jobs", interval_seconds=15, func=reap_abandoned_jobs),
        # RQ retries with an interval (alert deliveries) wait in the ScheduledJobRegistry;
        # this puts the due ones back on their queue.
        ScheduledJob("ops.enqueue_scheduled_jobs", interval_seconds=5, func=enqueue_due_scheduled_jobs),
        # Expired control pauses: the evaluator already ignores them; this deletes them and
        # writes operational_control.expired (SPEC 4).
        ScheduledJob("ops.expire_control_pauses", interval_seconds=60, func=run_expiry_job),
        # Audit rows and telemetry events the database could not take when they happened.
        ScheduledJob("ops.replay_spool", interval_seconds=15, func=replay_spools),
        # After-commit effects a dead process left undelivered, or due for a retry.
        ScheduledJob("ops.deliver_outbox", interval_seconds=10, func=outbox.deliver_due),
        # Four-eyes approval requests nobody decided in time (audited, requester told).
        ScheduledJob("ops.expire_approval_requests", interval_seconds=60, func=approvals.expire_due),
        ScheduledJob("ops.settle_stalled_approvals", interval_seconds=60, func=approvals.settle_stalled),
        # Used confirm-form tokens older than a day.
        ScheduledJob("ops.prune_idempotency_keys", interval_seconds=3600, func=idempotency.prune),
        # Sign-in sessions that can no longer be used (revoked, idle, too old).
        ScheduledJob("auth.prune_sessions", interval_seconds=3600, func=sessions.prune),
        # Artifacts past their expires_at (their owner's own cleanup normally goes first).
        ScheduledJob("ops.prune_artifacts", interval_seconds=3600, func=artifacts.prune_expired),
    ]
