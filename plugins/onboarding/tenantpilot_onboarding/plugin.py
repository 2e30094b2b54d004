"""Onboarding (SPEC 5): owns the "Onboarding checkpoints" telemetry family. The
onboarding flow itself, the family's only source, lands with the tenant-plane features."""
from tenantpilot import hookimpl
from tenantpilot.api import EventFamily

__version__ = "0.1.0"
CHECKPOINTS = ("identify", "connect_provider", "verify_access", "ready_for_activation", "activated")


@hookimpl
def tenantpilot_register_event_families(app):
    return EventFamily(name="product.onboarding.checkpoint_completed", feature_area="onboarding",
                       label="Onboarding checkpoints",
                       metadata_keys=("checkpoint_key", "lifecycle_state", "completed_at"))


@hookimpl
def tenantpilot_seed_demo(app):
    """Demo telemetry: a realistic spread of this family's events over 90 days."""
    from tenantpilot import telemetry

    telemetry.seed_demo_events("product.onboarding.checkpoint_completed", lambda rng: {"checkpoint_key": rng.choice(CHECKPOINTS), "lifecycle_state": rng.choice(CHECKPOINTS[1:])}, 160)
