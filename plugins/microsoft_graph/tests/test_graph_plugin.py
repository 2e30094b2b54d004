"""The provider's registration, the factory's checks, the settings and the payload
normalisation: what needs no (or no successful) Graph call."""
from importlib.metadata import entry_points

import pytest

from graph_helpers import app, build, connect, stub, tenant_id  # noqa: F401 (fixtures)
from tenantpilot.api import ProviderError
from tenantpilot_graph import plugin
from tenantpilot_graph.client import DEFAULTS, GraphSettings, settable_state


def test_entry_point_is_declared():
    (ep,) = [ep for ep in entry_points(group="tenantpilot") if ep.name == "microsoft_graph"]
    assert ep.value == "tenantpilot_graph.plugin"


def test_provider_is_registered_with_fields_and_policy_types(app):
    provider = app.extensions["tenantpilot"].registry.providers["microsoft_graph"]
    assert provider.label == "Microsoft Graph"
    assert [(f.name, f.kind, f.label) for f in provider.fields] == [
        ("tenant_guid", "guid", "Directory (tenant) ID"),
        ("client_id", "guid", "Application (client) ID"),
        ("client_secret_ref", "secret_ref", "Client secret reference"),
    ]
    assert provider.policy_types == {"device_configuration": "Device configuration",
                                     "compliance_policy": "Compliance policy",
                                     "conditional_access": "Conditional Access policy"}


@pytest.mark.parametrize("settings", [
    {},
    {"tenant_guid": "contoso.onmicrosoft.com", "client_id": "6f1d7a3e-0000-4000-8000-000000000001"},
    {"tenant_guid": "6f1d7a3e-0000-4000-8000-000000000001", "client_id": "not-a-guid"},
])
def test_factory_rejects_bad_settings_without_a_request(app, factory, stub, monkeypatch, settings):
    monkeypatch.setenv("TP_TEST_GRAPH_SECRET", "s3cret-value")
    tenant = factory.tenant(factory.workspace())
    connect(app, tenant.id, settings)
    with pytest.raises(ProviderError) as err:
        build(app, tenant.id)
    assert err.value.reason_code == "misconfigured"
    assert stub.log == []


def test_unknown_policy_type_is_unsupported_without_a_request(app, tenant_id, stub):
    client = build(app, tenant_id)
    for call in (lambda: client.list_policies("app_protection"),
                 lambda: client.get_policy("app_protection", "x"),
                 lambda: client.apply_policy("app_protection", "x", {})):
        with pytest.raises(ProviderError) as err:
            call()
        assert err.value.reason_code == "unsupported"
    assert stub.log == []


def test_settings_come_from_config_then_environment_then_defaults(make_app, monkeypatch, tmp_path):
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-")
    app = make_app(plugins=[plugin], TENANTPILOT_GRAPH_TIMEOUT=7)
    with app.app_context():
        assert GraphSettings.load() == GraphSettings(timeout=7.0)  # config, else the defaults
        assert GraphSettings.load().scope == "https://graph.microsoft.com/.default"
        monkeypatch.setenv("TENANTPILOT_GRAPH_TIMEOUT", "3")
        monkeypatch.setenv("TENANTPILOT_GRAPH_MAX_RETRIES", "1")
        monkeypatch.setenv("TENANTPILOT_GRAPH_BASE_URL", "https://graph.microsoft.us/v1.0/")
        monkeypatch.setenv("TENANTPILOT_GRAPH_CA_BUNDLE", str(bundle))
        loaded = GraphSettings.load()
    assert (loaded.timeout, loaded.max_retries, loaded.ca_bundle) == (7.0, 1, str(bundle))
    assert loaded.base_url == "https://graph.microsoft.us/v1.0"
    assert loaded.scope == "https://graph.microsoft.us/.default"  # the scope follows the Graph host


@pytest.mark.parametrize("name, value", [
    ("TENANTPILOT_GRAPH_BASE_URL", "http://graph.microsoft.com/v1.0"),
    ("TENANTPILOT_GRAPH_AUTHORITY_HOST", "login.microsoftonline.com"),
    ("TENANTPILOT_GRAPH_TIMEOUT", "soon"),
    ("TENANTPILOT_GRAPH_MAX_RETRIES", "-1"),
    ("TENANTPILOT_GRAPH_CA_BUNDLE", "/nonexistent/ca.pem"),
])
def test_unusable_settings_are_misconfigured(make_app, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    app = make_app(plugins=[plugin])
    with app.app_context(), pytest.raises(ProviderError) as err:
        GraphSettings.load()
    assert err.value.reason_code == "misconfigured"


def test_settable_state_strips_server_managed_keys_and_annotations():
    item = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#x", "@odata.etag": "W/1",
        "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
        "id": "abc", "createdDateTime": "t", "lastModifiedDateTime": "t", "modifiedDateTime": "t", "version": 3,
        "displayName": "Baseline", "assignments@odata.context": "x", "settings@odata.type": "#Collection(x)",
        "nested": {"id": "kept", "@odata.type": "#kept"},
    }
    assert settable_state(item) == {
        "@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "displayName": "Baseline",
        "settings@odata.type": "#Collection(x)", "nested": {"id": "kept", "@odata.type": "#kept"},
    }
