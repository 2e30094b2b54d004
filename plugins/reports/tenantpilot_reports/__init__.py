"""Built-in TenantPilot plugin: stored reports (its telemetry family for now)."""
