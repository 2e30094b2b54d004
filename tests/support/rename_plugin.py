"""A runbook with real, countable work: tenants named "legacy …" lose the prefix.
Preflight counts them; execute changes them set-based; a second run changes nothing.
Tenants named "fail-…" fail; with ALWAYS_FAIL set, every tenant fails (circuit breaker)."""
from sqlalchemy import func, select, update

from tenantpilot import hookimpl
from tenantpilot.api import ControlKey, Runbook, TenantJobError
from tenantpilot.extensions import db
from tenantpilot.models import Tenant

ALWAYS_FAIL = {"on": False}


def _scoped(q, scope):
    q = q.where(Tenant.status == "active", Tenant.is_platform.is_(False))
    if scope.get("kind") == "workspace":
        q = q.where(Tenant.workspace_id == scope["workspace_id"])
    elif scope.get("kind") == "single_tenant":
        q = q.where(Tenant.id == scope["tenant_id"])
    return q


def preflight(scope):
    affected = db.session.scalar(_scoped(select(func.count()).select_from(Tenant), scope)
                                 .where(Tenant.name.like("legacy %")))
    total = db.session.scalar(_scoped(select(func.count()).select_from(Tenant), scope))
    return {"affected_count": affected, "total_count": total, "estimated_tenants": affected}


def execute_tenant(job):
    if ALWAYS_FAIL["on"]:
        raise TenantJobError("broken_runbook", "This runbook fails every tenant.")
    name = db.session.get(Tenant, job.tenant_id).name
    if name.startswith("fail-"):
        raise TenantJobError("tenant_refused", "The tenant refused the change.")
    changed = db.session.execute(
        update(Tenant).where(Tenant.id == job.tenant_id, Tenant.name.like("legacy %"))
        .values(name=func.substr(Tenant.name, 8))
    ).rowcount
    return {"processed": 1, "updated": changed, "skipped": 1 - changed}


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(key="tests.rename", label="Legacy rename", description="Drops the 'legacy ' prefix.",
                   capability="platform.runbooks.tests.rename", confirmation_word="RENAME",
                   execute_tenant=execute_tenant, preflight=preflight, control_key="tests.rename",
                   circuit_min_tenants=20, circuit_failure_ratio=0.5,
                   # These tests are about the start flow itself; four-eyes approval is
                   # tested with approval_plugin (the same runbook, approval required).
                   approval_scopes=())


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key="tests.rename", label="Legacy rename", operation_types=("tests.rename",))
