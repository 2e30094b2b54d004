"""The "Trim tenant names" runbook: removes leading and trailing spaces from tenant names."""
from __future__ import annotations

from sqlalchemy import func, select, update

from tenantpilot.api import ControlKey, Runbook, TenantJob, TenantJobError
from tenantpilot.sdk import Tenant, db, hookimpl

KEY = "tenants.names.trim"


def _count_in_scope(scope, *where) -> int:
    q = select(func.count()).select_from(Tenant).where(
        Tenant.status == "active", Tenant.is_platform.is_(False), *where)
    if scope.get("kind") == "workspace":
        q = q.where(Tenant.workspace_id == scope.get("workspace_id"))
    elif scope.get("kind") == "single_tenant":
        q = q.where(Tenant.id == scope.get("tenant_id"))
    return db.session.scalar(q)


def preflight(scope) -> dict:
    """Read-only: how many tenants in the scope have a name that needs trimming."""
    total = _count_in_scope(scope)
    affected = _count_in_scope(scope, Tenant.name != func.trim(Tenant.name))
    # Each tenant with work is one item: the tenants with work are the affected ones.
    return {"affected_count": affected, "total_count": total, "estimated_tenants": affected}


def execute_tenant(job: TenantJob) -> dict:
    """One tenant. Set-based and idempotent: a single UPDATE … WHERE that matches
    nothing once the name is clean. No commit: the ledger commits these writes together
    with this tenant's result row."""
    result = db.session.execute(
        update(Tenant)
        .where(Tenant.id == job.tenant_id,
               Tenant.name != func.trim(Tenant.name),
               func.trim(Tenant.name) != "")
        .values(name=func.trim(Tenant.name))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        return {"processed": 1, "updated": result.rowcount}
    blank = db.session.scalar(
        select(func.count()).select_from(Tenant)
        .where(Tenant.id == job.tenant_id, func.trim(Tenant.name) == "")
    )
    if blank:
        # A stable reason code and a safe message: no names, e-mails or payloads.
        raise TenantJobError("blank_name", "The tenant name is blank; set a name first.")
    return {"processed": 1, "unchanged": 1}


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(
        key=KEY,
        label="Trim tenant names",
        description="Removes leading and trailing spaces from tenant names.",
        capability="platform.runbooks.tenants.names.trim",
        confirmation_word="TRIM",
        execute_tenant=execute_tenant,
        preflight=preflight,
        control_key=KEY,
        summary_keys=("unchanged",),
        summary_labels={"processed": "Tenant names checked", "updated": "Tenant names trimmed",
                        "unchanged": "Tenant names already clean"},
    )


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key=KEY, label="Tenant name trimming", operation_types=(KEY,))
