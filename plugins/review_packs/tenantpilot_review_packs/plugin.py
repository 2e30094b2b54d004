"""Review packs (SPEC 5): owns the "Review packs requested" telemetry family. Requesting a
pack, the family's only source, lands with the tenant-plane features."""
from tenantpilot import hookimpl
from tenantpilot.api import EventFamily

__version__ = "0.1.0"


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.review_pack.requested", feature_area="review_pack",
                       label="Review packs requested",
                       metadata_keys=("source_surface", "include_operations", "include_pii"))


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days."""
    from tenantpilot import telemetry

    telemetry.seed_demo_events("product.review_pack.requested", lambda rng: {"source_surface": "tenant_dashboard", "include_operations": rng.random() < 0.7, "include_pii": rng.random() < 0.2}, 140)
