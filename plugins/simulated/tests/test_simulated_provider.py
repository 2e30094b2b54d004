"""The simulated provider through the provider boundary (tenantpilot.providers)."""
import pytest

from tenantpilot.api import ProviderClient, ProviderError
from tenantpilot_simulated import client as sim
from tenantpilot_simulated import plugin
from tenantpilot.sdk import ProviderConnection, db, provider_client


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


def connected(app, factory, name="Contoso HQ"):
    tenant = factory.tenant(factory.workspace(), name=name)
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider="simulated", settings={}))
        db.session.commit()
    return tenant


def test_state_is_deterministic_per_external_id(app, factory):
    a = connected(app, factory)
    with app.app_context():
        client = provider_client(a.id)
        assert isinstance(client, ProviderClient)
        first = {t: client.list_policies(t) for t in sim.POLICY_TYPES}
        db.session.commit()
    assert [len(v) for v in first.values()] == [3, 2, 2]
    policies, permissions, roles = sim.generate_state(a.external_id)
    assert policies == sim.generate_state(a.external_id)[0]  # same id → same state
    assert sim.generate_state("another-id")[0] != policies
    with app.app_context():
        assert provider_client(a.id).granted_permissions() == sorted(permissions)
        assert [r.role for r in provider_client(a.id).directory_role_assignments()] == [r["role"] for r in roles]


def test_apply_changes_the_state_and_reports_unchanged_creates_and_rejects(app, factory):
    t = connected(app, factory)
    with app.app_context():
        client = provider_client(t.id)
        policy = client.list_policies("compliance_policy")[0]
        changed = {**policy.payload, "osMinimumVersion": "99.0"}
        assert client.apply_policy("compliance_policy", policy.policy_id, changed) == "applied"
        assert client.get_policy("compliance_policy", policy.policy_id).payload == changed
        assert client.apply_policy("compliance_policy", policy.policy_id, changed) == "unchanged"
        assert client.get_policy("compliance_policy", "missing") is None
        assert client.apply_policy("compliance_policy", "restored-1", {"displayName": "Restored"}) == "applied"
        assert client.get_policy("compliance_policy", "restored-1").name == "Restored"
        with pytest.raises(ProviderError) as bad:
            client.apply_policy("compliance_policy", policy.policy_id, {})
        assert bad.value.reason_code == "invalid_payload"
        with pytest.raises(ProviderError) as unknown:
            client.list_policies("printers")
        assert unknown.value.reason_code == "unsupported"
        db.session.commit()
        methods = [m for m, _, _ in sim.calls(t.id)]
    assert methods[:2] == ["list_policies", "apply_policy"] and methods.count("apply_policy") == 4


def test_a_tenant_without_connection_is_not_connected(app, factory):
    lonely = factory.tenant(factory.workspace())
    with app.app_context(), pytest.raises(ProviderError) as exc:
        provider_client(lonely.id)
    assert exc.value.reason_code == "not_connected" and "no provider connection" in exc.value.message
