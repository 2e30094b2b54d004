"""Stored reports (SPEC 5): owns the "Stored reports" telemetry family. Report generation,
the family's only source, lands with the tenant-plane features."""
from tenantpilot import hookimpl
from tenantpilot.api import EventFamily

__version__ = "0.1.0"


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.stored_report.created", feature_area="stored_reports", label="Stored reports",
                       metadata_keys=("report_type",))


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days."""
    from tenantpilot import telemetry

    telemetry.seed_demo_events("product.stored_report.created", lambda rng: {"report_type": rng.choice(("permission_posture", "entra_admin_roles"))}, 260)
