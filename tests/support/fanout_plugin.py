"""A runbook whose tenant jobs misbehave on purpose, chosen by tenant name:
"fail" → TenantJobError, "boom" → unexpected exception, "slow" → writes its pid to
$FANOUT_PID_FILE and sleeps (so a test can SIGKILL the worker mid-job)."""
import os
import time

from tenantpilot import hookimpl
from tenantpilot.api import ControlKey, Runbook, TenantJobError
from tenantpilot.extensions import db
from tenantpilot.models import Tenant


def execute_tenant(job):
    name = db.session.get(Tenant, job.tenant_id).name
    if "fail" in name:
        raise TenantJobError("simulated_failure", "Tenant refused the change (contact admin@example.com)")
    if "boom" in name:
        raise RuntimeError("secret-token-abcdefghijklmnopqrstuvwxyz0123456789 leaked")
    if "slow" in name:
        with open(os.environ["FANOUT_PID_FILE"], "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(float(os.environ.get("FANOUT_SLOW_SECONDS", "60")))
    return {"processed": 1, "updated": 1}


def preflight(scope):
    return {"affected_count": 1, "total_count": 1, "estimated_tenants": 1}


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(key="tests.fanout", label="Fan-out test", description="Test runbook",
                   capability="platform.runbooks.tests.fanout", confirmation_word="FANOUT",
                   execute_tenant=execute_tenant, preflight=preflight, control_key="tests.fanout")


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key="tests.fanout", label="Fan-out test", operation_types=("tests.fanout",))
