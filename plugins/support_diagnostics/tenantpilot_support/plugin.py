"""Support diagnostics (SPEC 5): the "Open support diagnostics" action on the tenant
dashboard and the operation-run viewer, which builds a sanitized diagnostic bundle,
shows it and records the audit event ``support_diagnostics.opened`` (also in the API,
``api``); and the "Support diagnostics" telemetry family, whose only source is that
action."""
from tenantpilot.api import TENANT_SURFACES, EventFamily, TenantAction, TenantCapability
from tenantpilot.sdk import hookimpl, seed_demo_events

from . import api
from .views import bp as admin_bp

__version__ = "0.1.0"


@hookimpl
def tenantpilot_register_tenant_capabilities(app):
    return TenantCapability(key="support.diagnostics", label="Open support diagnostics", roles=("owner", "manager", "operator"))


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.support_diagnostics.opened", feature_area="support_diagnostics",
                       label="Support diagnostics", metadata_keys=("source_surface", "operation_type"))


@hookimpl
def tenantpilot_register_tenant_actions(app):
    return TenantAction(key="support.diagnostics.open", label="Open support diagnostics",
                        endpoint="support_admin.open_diagnostics", capability="support.diagnostics",
                        surfaces=TENANT_SURFACES, order=50)


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    return admin_bp if plane == "admin" else None


# The API hook lives with its endpoints in api.py; pluggy registers this module only.
tenantpilot_register_api_blueprints = api.tenantpilot_register_api_blueprints


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days."""
    seed_demo_events("product.support_diagnostics.opened", lambda rng: {"source_surface": rng.choice(("tenant_dashboard", "operation_run_viewer")), "operation_type": None}, 120)
