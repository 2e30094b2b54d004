"""Built-in TenantPilot plugin: stored reports (permission posture, Entra admin roles)."""
