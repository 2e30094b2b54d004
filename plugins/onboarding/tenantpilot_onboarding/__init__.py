"""Built-in TenantPilot plugin: tenant onboarding (the /admin/onboarding wizard, its
access verification run and the "Onboarding checkpoints" telemetry family)."""
