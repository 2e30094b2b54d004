"""Helpers shared by the reports plugin's test modules (imported by basename)."""
from __future__ import annotations

from sqlalchemy import select, update

from tenantpilot.testing import post_form, signed_in  # noqa: F401  (signed_in: for the test modules)
from tenantpilot_reports import service
from tenantpilot_reports.models import StoredReport
from tenantpilot_simulated import client as sim
from tenantpilot_simulated.models import SimTenant
from tenantpilot.sdk import OperationRun, ProviderConnection, User, db
from tenantpilot.testing import ProductUsageEvent

EVENT = "product.stored_report.created"
POSTURE, ROLES = "permission_posture", "entra_admin_roles"
ALL_REQUIRED = sorted(service.REQUIRED_PERMISSIONS)


def connect(app, tenant, provider="simulated"):
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider=provider, settings={}))
        db.session.commit()


def rename_user(app, user, name):
    with app.app_context():
        db.session.execute(update(User).where(User.id == user.id).values(name=name))
        db.session.commit()




def generate(client, tenant, report_type):
    return post_form(client, f"/admin/t/{tenant.id}/reports/generate", {"report_type": report_type}, page="/admin/")


def _sim_row(tenant) -> SimTenant:
    sim.ensure_state(tenant.id, tenant.external_id)
    return db.session.get(SimTenant, tenant.id)


def set_permissions(app, tenant, permissions):
    """What the simulated vendor says our app holds in the tenant."""
    with app.app_context():
        _sim_row(tenant).permissions = list(permissions)
        db.session.commit()


def set_roles(app, tenant, assignments):
    """[(role, principal_id, principal_type)] as the simulated directory's assignments."""
    with app.app_context():
        _sim_row(tenant).role_assignments = [{"role": r, "principal_id": p, "principal_type": t}
                                             for r, p, t in assignments]
        db.session.commit()


def reports(app, tenant=None) -> list[StoredReport]:
    with app.app_context():
        q = select(StoredReport).order_by(StoredReport.id)
        if tenant is not None:
            q = q.where(StoredReport.tenant_id == tenant.id)
        rows = db.session.scalars(q).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def events(app, name=EVENT) -> list[ProductUsageEvent]:
    with app.app_context():
        q = select(ProductUsageEvent).order_by(ProductUsageEvent.id)
        if name:
            q = q.where(ProductUsageEvent.event_name == name)
        rows = db.session.scalars(q).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def runs_of(app, tenant, report_type) -> list[OperationRun]:
    with app.app_context():
        rows = db.session.scalars(select(OperationRun).where(
            OperationRun.tenant_id == tenant.id, OperationRun.type == service.REPORT_TYPES[report_type].operation_type)
            .order_by(OperationRun.id)).all()
        for r in rows:
            db.session.expunge(r)
        return rows
