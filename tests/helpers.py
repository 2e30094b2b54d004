"""Small helpers shared by the test modules."""
from sqlalchemy import func, select

from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationRun, OperationRunTenant
from tenantpilot.queue import all_queues


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def run_row(app, run_id):
    with app.app_context():
        run = db.session.get(OperationRun, run_id)
        db.session.expunge(run)
        return run


def tenant_rows(app, run_id):
    with app.app_context():
        return {r.tenant_id: (r.status, r.reason_code, r.message) for r in db.session.scalars(
            select(OperationRunTenant).where(OperationRunTenant.run_id == run_id))}


def tenant_counts(app, run_id):
    """tenant id -> (status, counts) of each result row of a run."""
    with app.app_context():
        return {r.tenant_id: (r.status, dict(r.counts or {})) for r in db.session.scalars(
            select(OperationRunTenant).where(OperationRunTenant.run_id == run_id))}


def audit_rows(app, action):
    with app.app_context():
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def queued_jobs(app) -> int:
    with app.app_context():
        return sum(q.count for q in all_queues(app))


def platform_actor(app, user):
    with app.app_context():
        from tenantpilot.models import PlatformUser

        return Actor.platform(db.session.get(PlatformUser, user.id))


def built_in_plugins() -> list:
    """(entry-point name, module) of the plugins this repository ships under plugins/,
    without third-party ones such as the installed worked example."""
    import importlib
    import importlib.metadata
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "plugins"
    modules = []
    for ep in importlib.metadata.entry_points(group="tenantpilot"):
        module = importlib.import_module(ep.value)
        if Path(module.__file__).resolve().is_relative_to(root):
            modules.append((ep.name, module))
    return modules
