"""Built-in TenantPilot plugin: review packs (its telemetry family for now)."""
