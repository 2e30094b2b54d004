"""Core plugin: audit the end of every runbook run (SPEC 3, step 7)."""
from __future__ import annotations

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import select

from . import audit
from .actors import Actor
from .extensions import db
from .hookspecs import hookimpl
from .models import AuditLog


@hookimpl
def tenantpilot_run_completed(run):
    runbook = current_app.extensions["tenantpilot"].registry.runbooks.get(run.type)
    if runbook is None:
        return
    done = db.session.scalar(select(AuditLog.id).where(
        AuditLog.target_type == "operation_run", AuditLog.target_id == str(run.id),
        AuditLog.action.in_(("platform.ops.runbooks.failed", "platform.ops.runbooks.completed"))).limit(1))
    if done:
        return  # recorded before (the outbox delivers at least once)
    failed = run.outcome in ("failed", "partially_succeeded")
    scope = (run.context or {}).get("scope") or {}
    audit.record(
        "platform.ops.runbooks.failed" if failed else "platform.ops.runbooks.completed",
        actor=Actor.system("Runbook ledger"),
        workspace_id=scope.get("workspace_id"), tenant_id=scope.get("tenant_id"),
        target=("operation_run", run.id, runbook.label),
        status="failed" if failed else "success",
        summary=f"{runbook.label} {run.outcome.replace('_', ' ')}: "
                + ngettext("%(count)s tenant done, %(failed)s failed", "%(count)s tenants done, %(failed)s failed",
                           run.tenants_done, count=f"{run.tenants_done:,}", failed=f"{run.tenants_failed:,}"),
        metadata={"runbook": runbook.key, "outcome": run.outcome, "summary_counts": run.summary_counts,
                  "circuit_open": bool((run.context or {}).get("circuit_open"))},
    )
