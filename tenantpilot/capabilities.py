"""Capability vocabularies of both planes (SPEC 1). Strings are stable: they are stored.

The core defines the capabilities it enforces itself; every other tenant capability is
registered by the plugin that enforces it (``api.TenantCapability``, with the roles that
hold it), so the core names no domain. The role map of SPEC 1 is the union of both.
"""
from __future__ import annotations

ROLES = ("owner", "manager", "operator", "readonly")

# key -> roles that hold it. "owner" holds every tenant capability (SPEC 1).
CORE_TENANT_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "tenant.view": ("owner", "manager", "operator", "readonly"),
    "tenant.manage": ("owner", "manager"),
}
OWNER_ONLY = ("workspace.members.manage",)

# Core platform capabilities; runbook plugins add one each (see Registry.platform_capabilities).
PLATFORM_CAPABILITIES = (
    "platform.access_system_panel",
    "platform.console.view",
    "platform.ops.view",
    "platform.runbooks.view",
    "platform.runbooks.run",
    "platform.runbooks.approve",
    "platform.ops.controls.manage",
    "platform.audit.view",
)


def role_map(plugin_capabilities) -> dict[str, frozenset[str]]:
    """Role -> capabilities, from the core's and the plugins' ``TenantCapability`` list."""
    holders = dict(CORE_TENANT_CAPABILITIES)
    holders.update({c.key: c.roles for c in plugin_capabilities})
    roles = {role: frozenset(k for k, who in holders.items() if role in who or role == "owner") for role in ROLES}
    roles["owner"] |= frozenset(OWNER_ONLY)
    return roles


def role_capabilities(role: str) -> frozenset[str]:
    """The capabilities of a tenant role in this app (core + installed plugins)."""
    from flask import current_app

    return current_app.extensions["tenantpilot"].registry.role_capabilities.get(role, frozenset())
