"""The findings table (SPEC 5). Timestamps are naive UTC (tenantpilot.timeutil)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column
from tenantpilot.sdk import db, utcnow


TYPES = ("drift", "permission", "compliance")
SEVERITIES = ("critical", "high", "medium", "low")
# Current lifecycle, then the legacy statuses the backfill normalizes.
STATUSES = ("new", "triaged", "in_progress", "resolved")
LEGACY_STATUSES = {"open": "new", "acknowledged": "triaged", "fixed": "resolved"}
ALL_STATUSES = STATUSES + tuple(LEGACY_STATUSES)
# Open = not resolved (legacy spellings included, so the backfill treats a legacy row
# exactly like its normalized form).
OPEN_STATUSES = ("new", "triaged", "in_progress", "open", "acknowledged")
RESOLVED_STATUSES = ("resolved", "fixed")


class Finding(db.Model):
    """One finding of one tenant.

    Indexes, each for a query that must stay fast on a tenant with 100,000 findings:
    (tenant_id, id) keyset pagination of the list page and id-range batches of the
    backfill (it is also the index on tenant_id); (tenant_id, status, id) the status
    filter and open-findings queries; (tenant_id, type, fingerprint, last_seen_at, id)
    the survivor of a drift duplicate group (most recently seen, then highest id) in one
    backward index scan.
    """

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_tenant_id_id", "tenant_id", "id"),
        Index("ix_findings_tenant_status_id", "tenant_id", "status", "id"),
        Index("ix_findings_tenant_type_fingerprint_seen", "tenant_id", "type", "fingerprint", "last_seen_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    type: Mapped[str] = mapped_column(db.String(40))  # drift | permission | compliance
    severity: Mapped[str] = mapped_column(db.String(20))  # critical | high | medium | low
    status: Mapped[str] = mapped_column(db.String(20), default="new")  # STATUSES (+ legacy)
    title: Mapped[str] = mapped_column(db.String(300))
    # Stable identity of what was detected (drift: the setting that drifted); duplicates
    # share it.
    fingerprint: Mapped[str | None] = mapped_column(db.String(128))
    created_at: Mapped[datetime] = mapped_column(db.DateTime, default=utcnow)
    first_seen_at: Mapped[datetime | None] = mapped_column(db.DateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(db.DateTime)
    due_at: Mapped[datetime | None] = mapped_column(db.DateTime)  # SLA due date (open findings)
    resolved_at: Mapped[datetime | None] = mapped_column(db.DateTime)
    resolution: Mapped[str | None] = mapped_column(db.String(40))  # e.g. consolidated_duplicate
    consolidated_into_id: Mapped[int | None] = mapped_column(db.ForeignKey("findings.id"))

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.is_open and self.due_at is not None and self.due_at < (now or utcnow())
