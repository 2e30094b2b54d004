"""Local tables that stand in for a vendor tenant."""
from __future__ import annotations

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from tenantpilot.sdk import db, utcnow



class SimTenant(db.Model):
    """Marks a tenant whose simulated state exists; holds its permissions and roles."""

    __tablename__ = "sim_tenants"
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"), primary_key=True)
    permissions: Mapped[list] = mapped_column(JSON, default=list)
    role_assignments: Mapped[list] = mapped_column(JSON, default=list)
    seeded_at = mapped_column(db.DateTime, default=utcnow, nullable=False)


class SimPolicy(db.Model):
    __tablename__ = "sim_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "policy_type", "policy_id", name="uq_sim_policies_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    policy_type: Mapped[str] = mapped_column(db.String(60))
    policy_id: Mapped[str] = mapped_column(db.String(100))
    name: Mapped[str] = mapped_column(db.String(200))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at = mapped_column(db.DateTime, default=utcnow, nullable=False)


class SimCall(db.Model):
    """Every call a client made, in the caller's transaction: the provider's own log,
    which tests read to prove that a blocked action made no call."""

    __tablename__ = "sim_calls"
    __table_args__ = (Index("ix_sim_calls_tenant_id", "tenant_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column()
    method: Mapped[str] = mapped_column(db.String(40))
    policy_type: Mapped[str | None] = mapped_column(db.String(60))
    policy_id: Mapped[str | None] = mapped_column(db.String(100))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
