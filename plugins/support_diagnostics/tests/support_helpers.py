"""Helpers shared by the support diagnostics test modules (imported by basename: pytest
puts this folder on sys.path for its test modules)."""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import insert, select

from tenantpilot_findings.models import Finding
from tenantpilot.sdk import AuditLog, OperationRun, ProviderConnection, User, db
from tenantpilot.testing import ProductUsageEvent

ACTION = "support.diagnostics.open"
AUDIT_ACTION = "support_diagnostics.opened"
EVENT = "product.support_diagnostics.opened"
# A raw e-mail in a stored failure message: the ledger scrubs messages when it writes
# them, so this row stands for an old or buggy writer; the bundle must scrub it again.
LEAKY_MESSAGE = "Token of dana.whitfield@contoso.example expired; ask Dana Whitfield to re-consent"


def connect(app, tenant, provider="simulated", settings=None, secret_ref=None, health="unverified"):
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider=provider, settings=settings or {},
                                          secret_ref=secret_ref, health=health))
        db.session.commit()


def rename_user(app, user, name):
    with app.app_context():
        db.session.get(User, user.id).name = name
        db.session.commit()


def add_run(app, tenant, *, type_="findings.lifecycle.backfill", status="completed", outcome="failed",
            failures=(), initiator=None, tenant_id=...) -> int:
    """A finished run row as the ledger leaves it (written directly: the bundle only reads)."""
    tid = tenant.id if tenant_id is ... else tenant_id
    with app.app_context():
        n = db.session.scalar(select(db.func.count()).select_from(OperationRun)) or 0
        run_id = db.session.execute(insert(OperationRun).values(
            workspace_id=tenant.workspace_id if tid is not None else None, tenant_id=tid, type=type_,
            status=status, outcome=outcome,
            run_identity_hash=hashlib.sha256(f"{type_}:{tid}:{n}".encode()).hexdigest(),
            initiator_user_id=initiator.id if initiator else None,
            initiator_name=initiator.name if initiator else None,
            summary_counts={"processed": 3, "failed": len(failures), "tenants": 1},
            failure_summary=[{"reason_code": code, "tenant_id": tid, "message": message} for code, message in failures],
            context={"operation_label": "Findings lifecycle backfill",
                     "initiator": {"type": "human", "id": initiator.id if initiator else None,
                                   "name": initiator.name if initiator else None}},
            tenants_total=1, tenants_done=1, tenants_failed=1 if failures else 0,
        ).returning(OperationRun.id)).scalar_one()
        db.session.commit()
        return run_id


def add_findings(app, tenant, *rows):
    """rows: (severity, status, title)."""
    with app.app_context():
        for severity, status, title in rows:
            db.session.execute(insert(Finding).values(tenant_id=tenant.id, type="compliance", severity=severity,
                                                      status=status, title=title))
        db.session.commit()


def audit_dicts(app) -> list[dict]:
    with app.app_context():
        return [{c.key: getattr(r, c.key) for c in AuditLog.__mapper__.column_attrs}
                for r in db.session.scalars(select(AuditLog).where(AuditLog.action == AUDIT_ACTION)
                                            .order_by(AuditLog.id))]


def event_dicts(app) -> list[dict]:
    with app.app_context():
        return [{c.key: getattr(r, c.key) for c in ProductUsageEvent.__mapper__.column_attrs}
                for r in db.session.scalars(select(ProductUsageEvent).where(ProductUsageEvent.event_name == EVENT)
                                            .order_by(ProductUsageEvent.id))]


def serialized(row: dict, *, without=()) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in without}, default=str, sort_keys=True)
