"""Built-in TenantPilot plugin: the Microsoft Graph provider.

``plugin`` registers the provider, ``client`` holds the HTTPS client (MSAL client
credentials, retries, paging, payload normalisation) and ``stub`` is a local HTTPS
stand-in for the sign-in service and Graph, used by the tests (needs ``trustme``).
"""
