"""Built-in TenantPilot plugin: support diagnostics (the "Open support diagnostics"
action, its sanitized bundle and its telemetry family)."""
