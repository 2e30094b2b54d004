"""Registers the "Restore execution" operational control (SPEC 4)."""
from tenantpilot import hookimpl
from tenantpilot.api import ControlKey


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(
        key="restore.execute",
        label="Restore execution",
        operation_types=("restore.execute",),
        surfaces=("admin.restore_runs",),
    )
