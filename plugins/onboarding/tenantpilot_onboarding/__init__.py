"""Built-in TenantPilot plugin: tenant onboarding (its telemetry family for now)."""
