"""The simulated provider client: the ProviderClient interface over local tables.

A tenant's state is generated deterministically from its external id the first time a
client is built for it, so every demo and test tenant starts from the same, believable
policies; apply_policy really changes that state, so a restore is visible afterwards.
"""
from __future__ import annotations

import hashlib
import uuid
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tenantpilot.api import PolicyRecord, ProviderConnectionInfo, ProviderError, RoleAssignment
from tenantpilot.sdk import db, utcnow

from .models import SimCall, SimPolicy, SimTenant

POLICY_TYPES = {
    "device_configuration": "Device configuration",
    "compliance_policy": "Compliance policy",
    "conditional_access": "Conditional Access policy",
}
# Permissions an app needs for every feature; one of them is withheld from some tenants,
# so a permission posture report has something to find.
PERMISSIONS = (
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementManagedDevices.Read.All",
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "RoleManagement.Read.Directory",
)
ROLES = ("Global Administrator", "Intune Administrator", "Security Reader", "Conditional Access Administrator")
_NS = uuid.UUID("6f1c4c1e-2b7a-4d0e-9a55-0d5b8f0f7a11")


def _seed_int(external_id: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{external_id}:{salt}".encode()).digest()[:4], "big")


def generate_state(external_id: str) -> tuple[list[dict], list[str], list[dict]]:
    """(policies, permissions, role assignments) for a tenant, always the same for the
    same external id."""
    n = _seed_int(external_id, "policies")
    pid = lambda key: str(uuid.uuid5(_NS, f"{external_id}:{key}"))  # noqa: E731
    policies = [
        {"policy_type": "device_configuration", "policy_id": pid("win-baseline"), "name": "Windows 11 security baseline",
         "payload": {"@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "displayName": "Windows 11 security baseline",
                     "passwordRequired": True, "passwordMinimumLength": 8 + n % 7, "firewallEnabled": True,
                     "defenderRequireRealTimeMonitoring": True, "screenLockTimeoutInSeconds": 300 + 60 * (n % 5)}},
        {"policy_type": "device_configuration", "policy_id": pid("ios-restrictions"), "name": "iOS device restrictions",
         "payload": {"@odata.type": "#microsoft.graph.iosGeneralDeviceConfiguration", "displayName": "iOS device restrictions",
                     "passcodeRequired": True, "passcodeMinimumLength": 6, "cameraBlocked": bool(n % 2),
                     "appStoreBlocked": False}},
        {"policy_type": "device_configuration", "policy_id": pid("edge-settings"), "name": "Edge browser settings",
         "payload": {"@odata.type": "#microsoft.graph.windows10CustomConfiguration", "displayName": "Edge browser settings",
                     "omaSettings": [{"omaUri": "./Device/Vendor/MSFT/Policy/Config/Browser/AllowSmartScreen",
                                      "value": 1}]}},
        {"policy_type": "compliance_policy", "policy_id": pid("win-compliance"), "name": "Windows compliance",
         "payload": {"@odata.type": "#microsoft.graph.windows10CompliancePolicy", "displayName": "Windows compliance",
                     "osMinimumVersion": "10.0.22631", "bitLockerEnabled": True, "secureBootEnabled": True,
                     "passwordRequired": True}},
        {"policy_type": "compliance_policy", "policy_id": pid("ios-compliance"), "name": "iOS compliance",
         "payload": {"@odata.type": "#microsoft.graph.iosCompliancePolicy", "displayName": "iOS compliance",
                     "osMinimumVersion": f"17.{n % 6}", "securityBlockJailbrokenDevices": True}},
        {"policy_type": "conditional_access", "policy_id": pid("ca-mfa-admins"), "name": "Require MFA for administrators",
         "payload": {"displayName": "Require MFA for administrators", "state": "enabled",
                     "conditions": {"users": {"includeRoles": ["Global Administrator", "Intune Administrator"]},
                                    "applications": {"includeApplications": ["All"]}},
                     "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}}},
        {"policy_type": "conditional_access", "policy_id": pid("ca-legacy-auth"), "name": "Block legacy authentication",
         "payload": {"displayName": "Block legacy authentication",
                     "state": "enabled" if n % 3 else "enabledForReportingButNotEnforced",
                     "conditions": {"clientAppTypes": ["exchangeActiveSync", "other"],
                                    "users": {"includeUsers": ["All"]}},
                     "grantControls": {"operator": "OR", "builtInControls": ["block"]}}},
    ]
    withheld = PERMISSIONS[n % len(PERMISSIONS)] if n % 4 == 0 else None
    permissions = [p for p in PERMISSIONS if p != withheld]
    roles = [
        {"role": ROLES[i % len(ROLES)], "principal_id": str(uuid.uuid5(_NS, f"{external_id}:principal:{i}")),
         "principal_type": "user" if i % 3 else "group"}
        for i in range(2 + n % 4)
    ]
    return policies, permissions, roles


def ensure_state(tenant_id: int, external_id: str) -> None:
    """Create the tenant's simulated state once; concurrent first calls are harmless."""
    if db.session.get(SimTenant, tenant_id) is not None:
        return
    policies, permissions, roles = generate_state(external_id)
    try:
        with db.session.begin_nested():
            db.session.add(SimTenant(tenant_id=tenant_id, permissions=permissions, role_assignments=roles))
            db.session.flush()
            db.session.add_all(SimPolicy(tenant_id=tenant_id, **p) for p in policies)
    except IntegrityError:
        pass  # another worker seeded it first


class SimulatedClient:
    """ProviderClient over sim_* tables. Every call is logged in sim_calls."""

    def __init__(self, info: ProviderConnectionInfo):
        self.tenant_id = info.tenant_id
        ensure_state(info.tenant_id, info.tenant_external_id)

    def _log(self, method: str, policy_type: str | None = None, policy_id: str | None = None) -> None:
        db.session.add(SimCall(tenant_id=self.tenant_id, method=method, policy_type=policy_type, policy_id=policy_id))

    @staticmethod
    def _check_type(policy_type: str) -> None:
        if policy_type not in POLICY_TYPES:
            raise ProviderError("unsupported", f"Unknown policy type {policy_type!r}.")

    def _row(self, policy_type: str, policy_id: str) -> SimPolicy | None:
        return db.session.scalars(select(SimPolicy).where(
            SimPolicy.tenant_id == self.tenant_id, SimPolicy.policy_type == policy_type,
            SimPolicy.policy_id == policy_id)).first()

    @staticmethod
    def _record(row: SimPolicy) -> PolicyRecord:
        return PolicyRecord(row.policy_type, row.policy_id, row.name, dict(row.payload))

    def list_policies(self, policy_type: str) -> list[PolicyRecord]:
        self._check_type(policy_type)
        self._log("list_policies", policy_type)
        rows = db.session.scalars(select(SimPolicy).where(
            SimPolicy.tenant_id == self.tenant_id, SimPolicy.policy_type == policy_type).order_by(SimPolicy.name))
        return [self._record(r) for r in rows]

    def get_policy(self, policy_type: str, policy_id: str) -> PolicyRecord | None:
        self._check_type(policy_type)
        self._log("get_policy", policy_type, policy_id)
        row = self._row(policy_type, policy_id)
        return self._record(row) if row else None

    def apply_policy(self, policy_type: str, policy_id: str, payload: Mapping[str, Any]) -> str:
        self._check_type(policy_type)
        self._log("apply_policy", policy_type, policy_id)  # a rejected call is still a call
        if not isinstance(payload, Mapping) or not payload:
            raise ProviderError("invalid_payload", "The policy payload must be a non-empty object.")
        row = self._row(policy_type, policy_id)
        if row is not None and row.payload == dict(payload):
            return "unchanged"
        name = str(payload.get("displayName") or (row.name if row else policy_id))[:200]
        if row is None:
            db.session.add(SimPolicy(tenant_id=self.tenant_id, policy_type=policy_type, policy_id=policy_id,
                                     name=name, payload=dict(payload)))
        else:
            row.payload, row.name, row.updated_at = dict(payload), name, utcnow()
        db.session.flush()
        return "applied"

    def granted_permissions(self) -> list[str]:
        self._log("granted_permissions")
        return sorted(db.session.get(SimTenant, self.tenant_id).permissions)

    def directory_role_assignments(self) -> list[RoleAssignment]:
        self._log("directory_role_assignments")
        return [RoleAssignment(**r) for r in db.session.get(SimTenant, self.tenant_id).role_assignments]


def drift(tenant_id: int, count: int | None = None) -> int:
    """Change some of a tenant's simulated policies, as an admin editing the vendor portal
    would (demo and benchmarks). Returns how many changed."""
    rows = db.session.scalars(select(SimPolicy).where(SimPolicy.tenant_id == tenant_id).order_by(SimPolicy.id)).all()
    changed = 0
    for row in rows[: count if count is not None else len(rows)]:
        payload = dict(row.payload)
        payload["description"] = f"Edited outside TenantPilot ({changed + 1})"
        if "state" in payload:
            payload["state"] = "disabled"
        row.payload, row.updated_at = payload, utcnow()
        changed += 1
    db.session.flush()
    return changed


def calls(tenant_id: int) -> list[tuple[str, str | None, str | None]]:
    """The provider's call log for one tenant, oldest first: (method, policy_type, policy_id)."""
    return [tuple(r) for r in db.session.execute(
        select(SimCall.method, SimCall.policy_type, SimCall.policy_id)
        .where(SimCall.tenant_id == tenant_id).order_by(SimCall.id))]


def state(tenant_id: int) -> dict[tuple[str, str], dict]:
    """The tenant's current simulated policies: (policy_type, policy_id) → payload."""
    return {(r.policy_type, r.policy_id): dict(r.payload)
            for r in db.session.scalars(select(SimPolicy).where(SimPolicy.tenant_id == tenant_id))}
