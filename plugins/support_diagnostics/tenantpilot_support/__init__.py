"""Built-in TenantPilot plugin: support diagnostics (its telemetry family for now)."""
