"""Core plugin: audit the end of every runbook run (SPEC 3, step 7)."""
from __future__ import annotations

from flask import current_app

from . import audit
from .actors import Actor
from .hookspecs import hookimpl


@hookimpl
def tenantpilot_run_completed(run):
    runbook = current_app.extensions["tenantpilot"].registry.runbooks.get(run.type)
    if runbook is None:
        return
    failed = run.outcome in ("failed", "partially_succeeded")
    scope = (run.context or {}).get("scope") or {}
    audit.record(
        "platform.ops.runbooks.failed" if failed else "platform.ops.runbooks.completed",
        actor=Actor.system("Runbook ledger"),
        workspace_id=scope.get("workspace_id"), tenant_id=scope.get("tenant_id"),
        target=("operation_run", run.id, runbook.label),
        status="failed" if failed else "success",
        summary=f"{runbook.label} {run.outcome.replace('_', ' ')}: {run.tenants_done} tenant(s), "
                f"{run.tenants_failed} failed",
        metadata={"runbook": runbook.key, "outcome": run.outcome, "summary_counts": run.summary_counts,
                  "circuit_open": bool((run.context or {}).get("circuit_open"))},
    )
