"""Capability vocabularies of both planes (SPEC 1). Strings are stable: they are stored."""

TENANT_CAPABILITIES = (
    "tenant.view",
    "tenant.manage",
    "restore.execute",
    "findings.manage",
    "reports.generate",
    "review_packs.generate",
    "support.diagnostics",
)

ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    "owner": frozenset(TENANT_CAPABILITIES) | {"workspace.members.manage"},
    "manager": frozenset(TENANT_CAPABILITIES),
    "operator": frozenset(
        {"tenant.view", "findings.manage", "reports.generate", "review_packs.generate", "support.diagnostics"}
    ),
    "readonly": frozenset({"tenant.view"}),
}
ROLES = tuple(ROLE_CAPABILITIES)

# Core platform capabilities; runbook plugins add one each (see Registry.platform_capabilities).
PLATFORM_CAPABILITIES = (
    "platform.access_system_panel",
    "platform.console.view",
    "platform.ops.view",
    "platform.runbooks.view",
    "platform.runbooks.run",
    "platform.ops.controls.manage",
    "platform.audit.view",
)


def role_capabilities(role: str) -> frozenset[str]:
    return ROLE_CAPABILITIES.get(role, frozenset())
