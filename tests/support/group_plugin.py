"""A runbook with a group executor (execute_tenants), whose tenants misbehave on purpose,
chosen by tenant name: "fail" → TenantJobError, "boom" → unexpected exception (either
one fails the group, which then runs tenant by tenant), "cancel" → cancels its run after
its commit, "sleepy" → takes 1.2 s. Every execution writes one audit row for its tenant (``tests.group.work``,
metadata ``path`` = "group" | "single"), in the ledger's transaction: a tenant whose work
committed has exactly one, a failed tenant none."""
import time

from sqlalchemy import select

from tenantpilot import audit, hookimpl, runs
from tenantpilot.actors import Actor
from tenantpilot.api import ControlKey, Runbook, TenantJobError
from tenantpilot.extensions import db
from tenantpilot.models import Tenant

KEY = "tests.group"


def _work(job, name, path, size=1):
    if "sleepy" in name:
        time.sleep(1.2)  # a slow group: the job goes on one tenant per group
    if "fail" in name:
        raise TenantJobError("simulated_failure", "Tenant refused the change")
    if "boom" in name:
        raise RuntimeError("boom")
    audit.record("tests.group.work", actor=Actor.system("Group test"), workspace_id=job.workspace_id,
                 tenant_id=job.tenant_id, summary="worked", metadata={"path": path, "size": size}, commit=False)
    if "cancel" in name:
        job.after_commit(lambda: runs.cancel(job.run_id))
    return {"processed": 1, "updated": 1}


def execute_tenant(job):
    return _work(job, db.session.get(Tenant, job.tenant_id).name, "single")


def execute_tenants(jobs):
    names = dict(db.session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_([j.tenant_id for j in jobs]))).all())
    return {j.tenant_id: _work(j, names[j.tenant_id], "group", len(jobs)) for j in jobs}


def preflight(scope):
    return {"affected_count": 1, "total_count": 1, "estimated_tenants": 1}


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(key=KEY, label="Group test", description="Test runbook with a group executor",
                   capability="platform.runbooks.tests.group", confirmation_word="GROUP",
                   execute_tenant=execute_tenant, execute_tenants=execute_tenants, preflight=preflight,
                   control_key=KEY, changes_data=False)


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key=KEY, label="Group test", operation_types=(KEY,))
