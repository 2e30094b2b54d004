"""The canary runbook: every tenant job succeeds and changes nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from tenantpilot.api import Runbook, TenantJob
from tenantpilot.sdk import Tenant, db, hookimpl


def preflight(scope: dict) -> dict:
    q = select(func.count()).select_from(Tenant).where(Tenant.status == "active", Tenant.is_platform.is_(False))
    if scope.get("kind") == "workspace":
        q = q.where(Tenant.workspace_id == scope.get("workspace_id"))
    elif scope.get("kind") == "single_tenant":
        q = q.where(Tenant.id == scope.get("tenant_id"))
    tenants = db.session.scalar(q)
    # Its work is the tenants themselves: one probe each, so no tenant means nothing to do.
    return {"affected_count": tenants, "total_count": tenants, "estimated_tenants": tenants,
            "affected_label": "Tenants to probe"}


def execute_tenant(job: TenantJob) -> dict:
    return {"processed": 1}


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(
        key="ops.pipeline_canary",
        label="Pipeline canary",
        description="Dispatches one no-op job per tenant through the real queue and workers, "
                    "to prove the fan-out path is healthy. Changes no tenant data.",
        capability="platform.runbooks.ops.pipeline_canary",
        confirmation_word="CANARY",
        changes_data=False,  # no tenant data: no four-eyes approval needed
        execute_tenant=execute_tenant,
        preflight=preflight,
        templates={"preflight_detail": "tenantpilot_canary/card_detail.html"},
        summary_labels={"processed": "No-op jobs processed"},
    )
