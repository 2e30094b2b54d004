"""The restore plugin (SPEC 5): backups captured from a tenant's provider, restore runs
with the create wizard and its API (``api``: dry run, execute), and the "Restore
execution" operational control that gates "Execute restore" (SPEC 4)."""
from __future__ import annotations

from tenantpilot.api import ControlKey, OperationType, TenantCapability, TenantPage
from tenantpilot.sdk import hookimpl

from . import models  # noqa: F401  (puts the restore tables on the shared metadata)
from . import api, service
from .views import bp as admin_bp

__version__ = "0.2.0"


@hookimpl
def tenantpilot_register_tenant_capabilities(app):
    return TenantCapability(key="restore.execute", label="Execute restores", roles=("owner", "manager"))


@hookimpl
def tenantpilot_register_control_keys(app):
    return ControlKey(
        key=service.EXECUTE_KEY,
        label="Restore execution",
        operation_types=(service.EXECUTE_KEY,),
        surfaces=("admin.restore_runs",),
        surface_labels={"admin.restore_runs": "Restore runs tab of each tenant (tenant plane)"},
    )


@hookimpl
def tenantpilot_register_operation_types(app):
    return [
        OperationType(
            key=service.EXECUTE_KEY, label=service.EXECUTE_LABEL, execute_tenant=service.execute_tenant,
            summary_keys=("applied", "unchanged", "items_failed"), partial_failure_key="items_failed",
            summary_labels={"items": "Items to restore", "applied": "Items applied", "unchanged": "Items unchanged",
                            "items_failed": "Items failed"},
            tenant_capabilities=service.EXECUTE_CAPABILITIES, control_key=service.EXECUTE_KEY,
            scopes=("single_tenant",),
        ),
        OperationType(
            key=service.CAPTURE_KEY, label=service.CAPTURE_LABEL, execute_tenant=service.capture_tenant,
            tenant_capabilities=("tenant.manage",), scopes=("single_tenant",),
            summary_labels={"items": "Policies captured"},
        ),
    ]


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    return admin_bp if plane == "admin" else None


# The API hook lives with its endpoints in api.py; pluggy registers this module only.
tenantpilot_register_api_blueprints = api.tenantpilot_register_api_blueprints


@hookimpl
def tenantpilot_register_tenant_pages(app):
    return [
        TenantPage(key="restore.backups", label="Backups", endpoint="restore_admin.backups", order=20),
        TenantPage(key="restore.runs", label="Restore runs", endpoint="restore_admin.restore_runs", order=30),
    ]


@hookimpl
def tenantpilot_seed_demo(app):
    from . import demo

    demo.seed()
