"""TenantPilot plugin: the "Trim tenant names" runbook."""
__version__ = "0.2.0"
