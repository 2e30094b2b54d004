"""Registers the Microsoft Graph provider (entry point ``microsoft_graph``)."""
from __future__ import annotations

from tenantpilot.api import Provider, ProviderField, Setting
from tenantpilot.sdk import hookimpl

from .client import POLICY_TYPES, build_client


@hookimpl
def tenantpilot_register_settings(app):
    from .client import DEFAULTS

    docs = {
        "TENANTPILOT_GRAPH_AUTHORITY_HOST": ("Microsoft identity platform host that issues tokens (https).", str),
        "TENANTPILOT_GRAPH_BASE_URL": ("Microsoft Graph API base URL (https).", str),
        "TENANTPILOT_GRAPH_CA_BUNDLE": ("CA bundle file for Graph and the token endpoint (default: the system's).", str),
        "TENANTPILOT_GRAPH_TIMEOUT": ("Seconds before one Graph request times out.", float),
        "TENANTPILOT_GRAPH_MAX_RETRIES": ("Retries of a throttled or failing Graph request.", int),
        "TENANTPILOT_GRAPH_BACKOFF": ("First retry delay in seconds (doubles each retry).", float),
    }
    return [Setting(name, DEFAULTS[name], doc, parse) for name, (doc, parse) in docs.items()]


@hookimpl
def tenantpilot_register_providers(app):
    """One provider, ``microsoft_graph``: a client-credentials app registration per tenant."""
    return Provider(
        name="microsoft_graph",
        label="Microsoft Graph",
        factory=build_client,
        policy_types={key: label for key, (label, _) in POLICY_TYPES.items()},
        fields=(
            ProviderField("tenant_guid", "Directory (tenant) ID", kind="guid",
                          help="The Microsoft Entra tenant's GUID.",
                          default=lambda tenant: tenant.external_id),  # the tenant's own directory id
            ProviderField("client_id", "Application (client) ID", kind="guid",
                          help="The app registration granted the Graph application permissions."),
            ProviderField("client_secret_ref", "Client secret reference", kind="secret_ref",
                          help="Where the app's client secret is: env:TENANTPILOT_PROVIDER_SECRET_<NAME> or file:<name> in the secrets folder."),
        ),
    )
