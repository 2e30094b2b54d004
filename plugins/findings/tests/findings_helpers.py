"""Helpers shared by the findings plugin's test modules (imported by basename: pytest
puts this folder on sys.path for its test modules)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from tenantpilot_findings.models import Finding
from tenantpilot.sdk import db
from tenantpilot.testing import OperationalControlActivation

T0 = datetime(2025, 3, 1, 9, 30, 15, 123456)  # a legacy created_at with microseconds
COLUMNS = ("id", "tenant_id", "type", "severity", "status", "title", "fingerprint", "created_at", "first_seen_at",
           "last_seen_at", "due_at", "resolved_at", "resolution", "consolidated_into_id")
PAUSE_REASON = "Vendor incident: hold findings repairs"


def finding(tenant_id, **kw) -> dict:
    """A legacy-looking row unless told otherwise: open, no lifecycle dates."""
    row = {"tenant_id": tenant_id, "type": "compliance", "severity": "medium", "status": "open",
           "title": "Audit log retention below 180 days", "fingerprint": None, "created_at": T0,
           "first_seen_at": None, "last_seen_at": None, "due_at": None, "resolved_at": None, "resolution": None,
           "consolidated_into_id": None}
    row.update(kw)
    return row


def add(app, *rows) -> list[int]:
    """Bulk-insert findings; returns their ids in order."""
    with app.app_context():
        ids = [db.session.execute(insert(Finding).values(**row).returning(Finding.id)).scalar_one() for row in rows]
        db.session.commit()
        return ids


def snapshot(app) -> dict[int, dict]:
    """Every finding as a plain dict, by id."""
    with app.app_context():
        return {r.id: {c: getattr(r, c) for c in COLUMNS} for r in db.session.scalars(select(Finding))}


def changed_ids(before: dict, after: dict) -> set[int]:
    return {i for i in before if before[i] != after[i]}


def pause(app, scope_type="global", workspace_id=None, reason=PAUSE_REASON):
    """An active pause of the backfill's control key (what /system/ops/controls writes)."""
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="findings.lifecycle.backfill",
                                                    scope_type=scope_type, workspace_id=workspace_id,
                                                    reason_text=reason))
        db.session.commit()


def days(n) -> timedelta:
    return timedelta(days=n)
