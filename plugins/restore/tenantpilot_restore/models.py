"""Backups and restore runs (SPEC 5). Rows always carry their tenant_id, so every
lookup from a tenant page is scoped to that tenant (another tenant's id is a 404)."""
from __future__ import annotations

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from tenantpilot.sdk import db, utcnow



class Policy(db.Model):
    """A policy of a tenant as last seen at its provider (the inventory backups point at)."""

    __tablename__ = "restore_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "policy_type", "external_id", name="uq_restore_policies_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    policy_type: Mapped[str] = mapped_column(db.String(60))
    external_id: Mapped[str] = mapped_column(db.String(100))
    name: Mapped[str] = mapped_column(db.String(200))
    first_seen_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    last_seen_at = mapped_column(db.DateTime, default=utcnow, nullable=False)


class BackupSet(db.Model):
    """A snapshot of a tenant's policies, taken by a capture run (or seeded for the demo)."""

    __tablename__ = "backup_sets"
    __table_args__ = (Index("ix_backup_sets_tenant_id", "tenant_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(db.String(200))
    item_count: Mapped[int] = mapped_column(default=0)
    # The capture run that made it; unique, so a re-executed capture job cannot make two.
    operation_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"), unique=True)
    created_by_name: Mapped[str | None] = mapped_column(db.String(200))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    items = relationship("BackupItem", back_populates="backup_set", order_by="BackupItem.id")


class BackupItem(db.Model):
    __tablename__ = "backup_items"
    __table_args__ = (Index("ix_backup_items_set_id", "backup_set_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    backup_set_id: Mapped[int] = mapped_column(db.ForeignKey("backup_sets.id"))
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    policy_id: Mapped[int] = mapped_column(db.ForeignKey("restore_policies.id"))
    policy_type: Mapped[str] = mapped_column(db.String(60))
    external_id: Mapped[str] = mapped_column(db.String(100))
    name: Mapped[str] = mapped_column(db.String(200))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    backup_set = relationship("BackupSet", back_populates="items")


class RestoreRun(db.Model):
    """A restore of (some items of) a backup set onto its tenant.

    kind ``dry_run``: the preview only, nothing applied, no operation run.
    kind ``execute``: created together with its operation run (the ledger holds status
    and outcome); the job records one RestoreRunItem result per item."""

    __tablename__ = "restore_runs"
    __table_args__ = (Index("ix_restore_runs_tenant_id", "tenant_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    backup_set_id: Mapped[int] = mapped_column(db.ForeignKey("backup_sets.id"))
    operation_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"), unique=True)
    rerun_of_id: Mapped[int | None] = mapped_column(db.ForeignKey("restore_runs.id"))
    kind: Mapped[str] = mapped_column(db.String(20))  # dry_run | execute
    scope: Mapped[str] = mapped_column(db.String(20))  # all | selected
    item_count: Mapped[int] = mapped_column(default=0)
    requested_by_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"))
    requested_by_name: Mapped[str | None] = mapped_column(db.String(200))
    created_at = mapped_column(db.DateTime, default=utcnow, nullable=False)
    backup_set = relationship("BackupSet")
    operation_run = relationship("OperationRun")
    items = relationship("RestoreRunItem", back_populates="restore_run", order_by="RestoreRunItem.id")


class RestoreRunItem(db.Model):
    """One backup item in a restore run: its preview (both kinds) and, for an executed
    run, its result: pending → applied | unchanged | failed (sanitized reason)."""

    __tablename__ = "restore_run_items"
    __table_args__ = (Index("ix_restore_run_items_run_id", "restore_run_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    restore_run_id: Mapped[int] = mapped_column(db.ForeignKey("restore_runs.id"))
    backup_item_id: Mapped[int] = mapped_column(db.ForeignKey("backup_items.id"))
    policy_type: Mapped[str] = mapped_column(db.String(60))
    name: Mapped[str] = mapped_column(db.String(200))
    preview_action: Mapped[str] = mapped_column(db.String(20))  # create | update | unchanged | unknown
    preview_changes: Mapped[list] = mapped_column(JSON, default=list)  # [{path, current, backup}]
    result: Mapped[str | None] = mapped_column(db.String(20))  # None (dry run) | pending | applied | unchanged | failed
    reason_code: Mapped[str | None] = mapped_column(db.String(60))
    message: Mapped[str | None] = mapped_column(db.String(300))
    finished_at = mapped_column(db.DateTime, nullable=True)
    restore_run = relationship("RestoreRun", back_populates="items")
