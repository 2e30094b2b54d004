"""Fixtures shared by the Microsoft Graph tests: a running stub, an app pointed at it and
a tenant connected to it. Import the fixtures by name into a test module."""
import pytest

from tenantpilot_graph import client as graph_client
from tenantpilot_graph import plugin
from tenantpilot_graph.stub import GraphStub
from tenantpilot.sdk import ProviderConnection, db, provider_client

SECRET_ENV = "TENANTPILOT_PROVIDER_SECRET_TP_TEST_GRAPH"
FAST = {"TENANTPILOT_GRAPH_BACKOFF": 0.01, "TENANTPILOT_GRAPH_TIMEOUT": 5}


@pytest.fixture
def stub():
    with GraphStub() as running:
        yield running
    graph_client.clear_caches()  # each stub is a new authority; drop its MSAL app and session


@pytest.fixture
def app(make_app, stub, monkeypatch):
    for name in graph_client.DEFAULTS:
        monkeypatch.delenv(name, raising=False)  # only the app config counts here
    return make_app(plugins=[plugin], **stub.config(), **FAST)


@pytest.fixture
def tenant_id(app, factory, stub, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, stub.client_secret)
    tenant = factory.tenant(factory.workspace())
    connect(app, tenant.id, {"tenant_guid": stub.tenant_guid, "client_id": stub.client_id})
    return tenant.id


@pytest.fixture
def graph(app, tenant_id):
    return build(app, tenant_id)


def connect(app, tenant_id, settings, secret_ref=f"env:{SECRET_ENV}"):
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant_id, provider="microsoft_graph",
                                          settings=settings, secret_ref=secret_ref))
        db.session.commit()


def build(app, tenant_id):
    """The tenant's client, built the way the platform builds it."""
    with app.app_context():
        return provider_client(tenant_id)


def other_app(make_app, stub, **config):
    """A second app on the same database with different Graph settings."""
    return make_app(plugins=[plugin], **{**stub.config(), **FAST, **config})
