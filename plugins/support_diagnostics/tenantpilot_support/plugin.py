"""Support diagnostics (SPEC 5): owns the "Support diagnostics" telemetry family. The
"Open support diagnostics" action, the family's only source, lands with the tenant-plane
features."""
from tenantpilot import hookimpl
from tenantpilot.api import EventFamily

__version__ = "0.1.0"


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.support_diagnostics.opened", feature_area="support_diagnostics",
                       label="Support diagnostics", metadata_keys=("source_surface", "operation_type"))


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days."""
    from tenantpilot import telemetry

    telemetry.seed_demo_events("product.support_diagnostics.opened", lambda rng: {"source_surface": rng.choice(("tenant_dashboard", "operation_run_viewer")), "operation_type": None}, 120)
