"""Stored reports (SPEC 5). A row is one snapshot of what a tenant's provider said, kept
only when it differs from the tenant's previous report of the same type (fingerprint).
Rows carry their tenant_id, so every lookup from a tenant page is scoped to that tenant."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index
from sqlalchemy.orm import Mapped, mapped_column
from tenantpilot.sdk import db, utcnow



class StoredReport(db.Model):
    """One report of one tenant.

    ``summary`` holds counts and names of permissions / roles only (never principal ids
    or names); ``fingerprint`` is the sha256 of the canonical provider data the summary
    was built from, so an unchanged tenant is recognised without comparing summaries.

    Indexes: (tenant_id, id) the list page, newest first; (tenant_id, report_type, id)
    the previous report of a type (the unchanged check and the detail page's comparison).
    """

    __tablename__ = "stored_reports"
    __table_args__ = (
        Index("ix_stored_reports_tenant_id_id", "tenant_id", "id"),
        Index("ix_stored_reports_tenant_type_id", "tenant_id", "report_type", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(db.ForeignKey("tenants.id"))
    report_type: Mapped[str] = mapped_column(db.String(60))  # permission_posture | entra_admin_roles
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(db.String(64))
    # The run that made it; unique, so a re-executed job cannot store a second report.
    # Null for demo data.
    operation_run_id: Mapped[int | None] = mapped_column(db.ForeignKey("operation_runs.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(db.DateTime, default=utcnow)
