"""Audit log: append-only (ORM and database both refuse), fail-safe, sanitized."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from tenantpilot import audit
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog
from tests.helpers import count


def test_platform_plane_event_has_null_workspace_and_tenant(app):
    with app.app_context():
        row = audit.record("platform.test.event", actor=Actor.system(), summary="hello")
        assert row is not None and row.workspace_id is None and row.tenant_id is None
    assert count(app, AuditLog) == 1


def test_audit_rows_cannot_be_updated_or_deleted_through_the_orm(app):
    with app.app_context():
        row = audit.record("platform.test.event", summary="original")
        row.summary = "tampered"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.delete(db.session.get(AuditLog, row.id))
            db.session.commit()
        db.session.rollback()
        assert db.session.get(AuditLog, row.id).summary == "original"


def test_the_database_itself_refuses_update_and_delete(app):
    with app.app_context():
        row_id = audit.record("platform.test.event", summary="original").id
        for statement in ("UPDATE audit_logs SET summary = 'x'", "DELETE FROM audit_logs"):
            with pytest.raises(DatabaseError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.get(AuditLog, row_id).summary == "original"


def test_audit_failure_never_breaks_the_caller_and_keeps_its_transaction(app, caplog, monkeypatch):
    """A write that fails (injected, once): the caller's change commits, the row is
    spooled, and the replay writes it exactly once with its original time."""
    from sqlalchemy import select

    from tenantpilot import spool
    from tenantpilot.models import AuditLog, Workspace

    real_add = db.session.add
    calls = {"n": 0}

    def failing_add(obj, *a, **kw):
        if isinstance(obj, AuditLog) and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("injected audit write failure")
        return real_add(obj, *a, **kw)

    with app.app_context():
        monkeypatch.setattr(db.session, "add", failing_add)
        db.session.add(Workspace(name="Kept", slug="kept"))
        assert audit.record("x.y", summary="the change", commit=False) is None  # logged, not raised
        db.session.commit()
        monkeypatch.undo()
        assert db.session.query(Workspace).filter_by(slug="kept").count() == 1
        assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "x.y")) is None
        assert spool.pending("audit") == 1
        assert audit.replay_spool() == 1 and audit.replay_spool() == 0
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == "x.y")).all()
        assert [r.summary for r in rows] == ["the change"] and spool.pending("audit") == 0
    assert "audit write failed" in caplog.text


def test_a_spooled_row_of_a_rolled_back_action_is_dropped(app, monkeypatch):
    from tenantpilot import spool
    from tenantpilot.models import AuditLog

    real_add = db.session.add
    with app.app_context():
        monkeypatch.setattr(db.session, "add", lambda obj, *a, **kw: (_ for _ in ()).throw(RuntimeError("boom"))
                            if isinstance(obj, AuditLog) else real_add(obj, *a, **kw))
        audit.record("x.rolled_back", commit=False)
        db.session.rollback()
        monkeypatch.undo()
        assert spool.pending("audit") == 0


def test_an_unknown_status_is_kept_as_failed(app, caplog):
    with app.app_context():
        row = audit.record("x.z", status="not-a-status")
        assert row.status == "failed" and row.meta["invalid_status"] == "not-a-status"
    assert "unknown status" in caplog.text


def test_metadata_is_sanitized(app):
    with app.app_context():
        row = audit.record("platform.test.event", metadata={
            "client_secret": "hunter2", "note": "mail bob@example.com",
            "blob": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.payload.signature"})
        assert row.meta["client_secret"] == "[redacted]"
        assert "@" not in row.meta["note"]
        assert "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" not in row.meta["blob"]
