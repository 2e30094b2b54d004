"""The "Trim tenant names" runbook: removes leading and trailing spaces from tenant names.

Everything a third-party plugin usually needs, through the public surface only
(``tenantpilot.api``, ``tenantpilot.sdk``): a runbook with its control key, a setting, a
telemetry family recorded from the executor after the ledger's commit, a tenant tab with
a button that starts the runbook for one tenant, and a stylesheet.
"""
from __future__ import annotations

from sqlalchemy import func, select, update

from tenantpilot.api import ControlKey, EventFamily, Runbook, Setting, TenantJob, TenantJobError, TenantPage
from tenantpilot.sdk import Tenant, db, hookimpl, record_event, setting

KEY = "tenants.names.trim"
EVENT = "product.tenant_names.trimmed"
SKIP_PREFIX = "TENANTPILOT_TRIM_NAMES_SKIP_PREFIX"


def _needs_trim():
    """Names with spaces at either end, except those the operators asked to leave alone."""
    clauses = [Tenant.name != func.trim(Tenant.name)]
    prefix = setting(SKIP_PREFIX)
    if prefix:
        clauses.append(~Tenant.name.startswith(prefix, autoescape=True))
    return clauses


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
    affected = _count_in_scope(scope, *_needs_trim())
    # Each tenant with work is one item: the tenants with work are the affected ones.
    return {"affected_count": affected, "total_count": total, "estimated_tenants": affected}


def execute_tenant(job: TenantJob) -> dict:
    """One tenant. Set-based and idempotent: a single UPDATE … WHERE that matches
    nothing once the name is clean. No commit: the ledger commits these writes together
    with this tenant's result row; the telemetry event follows that commit."""
    result = db.session.execute(
        update(Tenant)
        .where(Tenant.id == job.tenant_id, func.trim(Tenant.name) != "", *_needs_trim())
        .values(name=func.trim(Tenant.name))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        initiator = job.context.get("initiator") or {}
        if initiator.get("type") == "human":  # product usage is the customers', not our staff's
            job.after_commit(lambda: record_event(EVENT, workspace_id=job.workspace_id, tenant_id=job.tenant_id,
                                                  user_id=initiator.get("id"), metadata={"source": "tenant_tab"}))
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
        # Tenant managers may trim their own tenant's name from its "Name" tab.
        tenant_capabilities=("tenant.manage",),
    )


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key=KEY, label="Tenant name trimming", operation_types=(KEY,),
                      surfaces=("admin.trim_names",), surface_labels={"admin.trim_names": "Tenant name tab"})


@hookimpl
def tenantpilot_register_settings(app):
    return Setting(SKIP_PREFIX, "", "Names starting with this text are never trimmed (e.g. '_' for test tenants).")


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name=EVENT, feature_area="tenant_names", label="Tenant names trimmed",
                       metadata_keys=("source",))


@hookimpl
def tenantpilot_register_tenant_pages(app):
    return TenantPage(key="trim_names.name", label="Name", endpoint="trim_names_admin.name_tab", order=90)


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    from .views import bp

    return bp if plane == "admin" else None
