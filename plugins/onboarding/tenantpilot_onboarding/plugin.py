"""Onboarding (SPEC 5): the /admin/onboarding wizard that walks a draft per prospective
tenant through identify → connect_provider → verify_access → ready_for_activation →
activated, its "Verify tenant access" operation type, and the "Onboarding checkpoints"
telemetry family whose only source is that wizard."""
from tenantpilot.api import EventFamily, OperationType, Setting, WorkspaceAction
from tenantpilot.sdk import hookimpl, seed_demo_events

from . import models  # noqa: F401  (puts the onboarding table on the shared metadata)
from . import service
from .views import bp as admin_bp

__version__ = "0.1.0"
CHECKPOINTS = service.CHECKPOINTS


@hookimpl
def tenantpilot_register_settings(app):
    return Setting("TENANTPILOT_ONBOARDING_REQUIRED_PERMISSIONS", service.DEFAULT_REQUIRED_PERMISSIONS,
                   "Provider permissions a verification checks for (comma-separated names).",
                   lambda raw: tuple(p.strip() for p in raw.split(",") if p.strip()))


@hookimpl
def tenantpilot_register_workspace_actions(app):
    return WorkspaceAction(key="onboarding.new_tenant", label="Onboard a tenant", endpoint="onboarding_admin.index",
                           capability=service.MANAGE)


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name=service.EVENT, feature_area="onboarding", label="Onboarding checkpoints",
                       metadata_keys=("checkpoint_key", "lifecycle_state", "completed_at"))


@hookimpl
def tenantpilot_register_operation_types(app):
    return OperationType(
        key=service.VERIFY_KEY, label=service.VERIFY_LABEL, execute_tenant=service.execute_verification,
        summary_keys=("permissions_granted", "permissions_missing", "role_assignments"),
        summary_labels={"permissions_granted": "Permissions granted", "permissions_missing": "Permissions missing",
                        "role_assignments": "Role assignments", "processed": "Verifications run"},
        tenant_capabilities=(service.MANAGE,), scopes=("single_tenant",),
        tenant_statuses=("onboarding",),  # the draft's tenant, before activation
    )


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    return admin_bp if plane == "admin" else None


@hookimpl
def tenantpilot_run_completed(run):
    service.on_run_completed(run)


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days (tenant-
    linked checkpoints only, each with the lifecycle state it leads to), and one open
    pre-tenant draft to continue in the wizard."""
    linked = CHECKPOINTS[1:]  # identify happens before a tenant exists: never recorded

    def metadata(rng):
        checkpoint = rng.choice(linked)
        return {"checkpoint_key": checkpoint, "lifecycle_state": service.LIFECYCLE[checkpoint]}

    seed_demo_events(service.EVENT, metadata, 160)
    from . import demo

    demo.seed()
