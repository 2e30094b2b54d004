"""Onboarding drafts (SPEC 5): one row per prospective tenant, walking the checkpoints
identify → connect_provider → verify_access → ready_for_activation → activated.

A draft belongs to a workspace from its first step; its tenant exists (and is linked
here) from connect_provider on. ``checkpoint`` is the last completed checkpoint and
``lifecycle_state`` the state that checkpoint leaves the draft in."""
from __future__ import annotations

from sqlalchemy import JSON, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from tenantpilot.sdk import db, utcnow


# A draft is "open" until it is activated; only open drafts reserve their GUID (the
# tenant, once created, holds it through the tenants table's own unique constraint).
OPEN_DRAFT = "lifecycle_state <> 'activated'"


class OnboardingDraft(db.Model):
    __tablename__ = "onboarding_drafts"
    __table_args__ = (
        Index("ix_onboarding_drafts_workspace_id", "workspace_id", "id"),
        Index("uq_onboarding_drafts_open_guid", "external_id", unique=True,
              postgresql_where=text(OPEN_DRAFT), sqlite_where=text(OPEN_DRAFT)),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"))
    tenant_id: Mapped[int | None] = mapped_column(db.ForeignKey("tenants.id"), unique=True)
    display_name: Mapped[str] = mapped_column(db.String(200))
    external_id: Mapped[str] = mapped_column(db.String(64))  # Entra tenant GUID, lower case
    checkpoint: Mapped[str] = mapped_column(db.String(40))
    lifecycle_state: Mapped[str] = mapped_column(db.String(40))
    provider: Mapped[str | None] = mapped_column(db.String(60))
    verification_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"))
    # {ok, missing_permissions, granted_count, required_count, role_assignment_count,
    #  roles, run_id, checked_at}: names of permissions and roles only, no principals.
    verification: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    completed: Mapped[dict] = mapped_column(JSON, default=dict)  # checkpoint → ISO time
    created_by_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"))
    updated_by_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    updated_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    activated_at = mapped_column(db.DateTime, nullable=True)
    workspace = relationship("Workspace")
    tenant = relationship("Tenant")
    verification_run = relationship("OperationRun")
