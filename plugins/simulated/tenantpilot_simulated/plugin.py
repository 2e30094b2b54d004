"""Registers the `simulated` provider and connects the demo tenants to it."""
from __future__ import annotations

from sqlalchemy import select

from tenantpilot.api import Provider
from tenantpilot.sdk import db, hookimpl

from . import models  # noqa: F401  (puts the sim_* tables on the shared metadata)
from .client import POLICY_TYPES, SimulatedClient

__version__ = "0.1.0"
NAME = "simulated"


@hookimpl
def tenantpilot_register_providers(app):
    return Provider(name=NAME, label="Simulated tenant", factory=SimulatedClient, policy_types=POLICY_TYPES)


@hookimpl(tryfirst=True)  # before other plugins' demo data, which reads through the provider
def tenantpilot_seed_demo(app):
    from tenantpilot.sdk import ProviderConnection, Tenant

    connected = select(ProviderConnection.tenant_id)
    for tenant in db.session.scalars(select(Tenant).where(Tenant.is_platform.is_(False), Tenant.id.not_in(connected))):
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider=NAME, settings={}, health="healthy"))
    db.session.commit()
