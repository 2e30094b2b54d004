"""The rename runbook under four-eyes approval (the default for a runbook that changes
data: all-tenants starts need a second operator), for tests/test_approvals.py."""
from tenantpilot import hookimpl
from tenantpilot.api import ControlKey, Runbook
from tests.support.rename_plugin import execute_tenant, preflight


@hookimpl
def tenantpilot_register_runbooks(app):
    return Runbook(key="tests.guarded", label="Guarded rename", description="Drops the 'legacy ' prefix, approved.",
                   capability="platform.runbooks.tests.guarded", confirmation_word="RENAME",
                   execute_tenant=execute_tenant, preflight=preflight, control_key="tests.guarded")


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(key="tests.guarded", label="Guarded rename", operation_types=("tests.guarded",))
