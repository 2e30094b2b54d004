"""Stored reports (SPEC 5): "Generate permission posture report" and "Generate Entra admin
roles report" (operation types through the start seam), the StoredReport table (own
migration branch), the tenant's Reports tab with the report detail, and the
"Stored reports" telemetry family whose only source is a report stored by a person's run."""
from __future__ import annotations

from tenantpilot.api import EventFamily, OperationType, TenantCapability, TenantPage
from tenantpilot.sdk import hookimpl, seed_demo_events

from . import models  # noqa: F401  (puts the stored_reports table on the shared metadata)
from . import service
from .views import bp as admin_bp

__version__ = "0.2.0"


@hookimpl
def tenantpilot_register_tenant_capabilities(app):
    return TenantCapability(key="reports.generate", label="Generate reports", roles=("owner", "manager", "operator"))


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name=service.EVENT, feature_area="stored_reports", label="Stored reports",
                       metadata_keys=("report_type",))


@hookimpl
def tenantpilot_register_operation_types(app):
    return [
        OperationType(key=spec.operation_type, label=spec.action_label, execute_tenant=service.execute_report,
                      summary_keys=service.SUMMARY_KEYS, summary_labels=service.SUMMARY_LABELS,
                      tenant_capabilities=(service.CAPABILITY,),
                      scopes=("single_tenant",))
        for spec in service.REPORT_TYPES.values()
    ]


@hookimpl
def tenantpilot_register_blueprints(app, plane):
    return admin_bp if plane == "admin" else None


@hookimpl
def tenantpilot_register_tenant_pages(app):
    return TenantPage(key="reports.list", label="Reports", endpoint="reports_admin.reports", order=40)


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo: one report of each type per connected tenant, and a realistic spread of this
    family's telemetry events over 90 days."""
    from sqlalchemy import select

    from tenantpilot.sdk import ProviderConnection, Tenant, db

    tenant_ids = db.session.scalars(
        select(Tenant.id).join(ProviderConnection, ProviderConnection.tenant_id == Tenant.id)
        .where(Tenant.is_platform.is_(False), Tenant.status == "active").order_by(Tenant.id)).all()
    for tenant_id in tenant_ids:
        for report_type in service.REPORT_TYPES:
            service.store_demo_report(tenant_id, report_type)
    db.session.commit()
    seed_demo_events(service.EVENT, lambda rng: {"report_type": rng.choice(tuple(service.REPORT_TYPES))},
                               260)
