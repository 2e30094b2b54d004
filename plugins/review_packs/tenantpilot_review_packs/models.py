"""The review pack table (SPEC 5). A row is created together with its operation run (the
start seam's ``attach``) and carries its tenant, so every lookup from a tenant page is
scoped to that tenant (another tenant's pack id is a 404)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship
from tenantpilot.sdk import db, utcnow


STATUSES = ("queued", "ready", "failed")


class ReviewPack(db.Model):
    """One generated (or generating) pack: a ZIP of JSON + CSV files, kept in the core
    artifact store (``artifact_id``), so the worker that builds it and the web process that
    serves it need no shared disk.

    status: queued → ready (artifact stored, size and sha256 set) | failed. ``data_fingerprint``
    digests the source data the file was built from, so an identical request can reuse a
    ready pack while that data is unchanged. ``expires_at``: the pack is no longer served
    after it and the daily prune deletes the row and its artifact."""

    __tablename__ = "review_packs"
    __table_args__ = (
        Index("ix_review_packs_tenant_id", "tenant_id", "id"),
        # The reuse lookup: the newest ready pack of a tenant with these options.
        Index("ix_review_packs_reuse", "tenant_id", "include_operations", "include_pii", "status", "id"),
        Index("ix_review_packs_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(db.ForeignKey("workspaces.id"))
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    operation_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"), unique=True)
    status: Mapped[str] = mapped_column(db.String(20), default="queued")
    include_operations: Mapped[bool] = mapped_column(default=False)
    include_pii: Mapped[bool] = mapped_column(default=False)
    data_fingerprint: Mapped[str | None] = mapped_column(db.String(64))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(db.String(64))
    # SET NULL: the core's sweep of expired artifacts may beat the daily prune to it.
    artifact_id: Mapped[int | None] = mapped_column(db.ForeignKey("artifacts.id", ondelete="SET NULL"))
    # Rows per file kind, e.g. {"findings": 12, "operation_runs": 3}.
    row_counts: Mapped[dict] = mapped_column(db.JSON, default=dict)
    failure_reason: Mapped[str | None] = mapped_column(db.String(60))
    requested_by_user_id: Mapped[int | None] = mapped_column(db.ForeignKey("users.id"))
    requested_by_name: Mapped[str | None] = mapped_column(db.String(200))
    created_at: Mapped[datetime] = mapped_column(db.DateTime, default=utcnow)
    generated_at: Mapped[datetime | None] = mapped_column(db.DateTime)
    expires_at: Mapped[datetime] = mapped_column(db.DateTime)
    operation_run = relationship("OperationRun")

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or utcnow())
