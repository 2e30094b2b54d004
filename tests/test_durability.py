"""Nothing lost around the ledger: run-completion effects from a transactional outbox,
audit and telemetry rows spooled and replayed when the database refuses them."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tenantpilot import outbox, seam, spool, telemetry
from tenantpilot.extensions import db
from tenantpilot.models import AlertDelivery, AuditLog, Notification, OutboxMessage, ProductUsageEvent
from tenantpilot.runs import Scope
from tenantpilot.timeutil import utcnow
from tests.helpers import platform_actor
from tests.support import fanout_plugin


@pytest.fixture
def app(make_app):
    return make_app(plugins=[fanout_plugin])


def start_failing_run(app, factory):
    ws = factory.workspace("Contoso Holdings")
    for name in ("fail-one", "fine-two"):
        factory.tenant(ws, name=name)
    user = factory.platform_user()
    with app.app_context():
        result = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=platform_actor(app, user),
                            source="system_ui")
        return result.run.id, user


def effects(app, run_id):
    with app.app_context():
        return {
            "notifications": db.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.run_id == run_id, Notification.kind == "operations.run.completed")),
            "alerts": db.session.scalar(select(func.count()).select_from(AlertDelivery).where(
                AlertDelivery.run_id == run_id)),
            "completed_audit": db.session.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.target_type == "operation_run", AuditLog.target_id == str(run_id),
                AuditLog.action.in_(("platform.ops.runbooks.failed", "platform.ops.runbooks.completed")))),
            "outbox": dict(db.session.execute(select(OutboxMessage.status, func.count()).where(
                OutboxMessage.run_id == run_id).group_by(OutboxMessage.status)).all()),
        }


def test_completion_effects_are_outbox_rows_delivered_once(app, factory, drain):
    run_id, _ = start_failing_run(app, factory)
    drain()
    got = effects(app, run_id)
    assert got["notifications"] == 1 and got["alerts"] >= 1 and got["completed_audit"] == 1
    with app.app_context():
        plugins = {impl.plugin_name for impl in app.extensions["tenantpilot"].pm.hook.tenantpilot_run_completed
                   .get_hookimpls()}
    assert got["outbox"] == {"delivered": len(plugins)}


def test_a_process_killed_between_the_completing_commit_and_the_hooks(app, factory, drain, monkeypatch):
    """The completing process dies right after its commit (no hook ran): after restart the
    scheduler delivers the notification, the alert and the completion audit, once."""
    monkeypatch.setattr(outbox, "deliver_run", lambda run_id: 0)  # the process "dies" here
    run_id, _ = start_failing_run(app, factory)
    drain()
    got = effects(app, run_id)
    assert got["notifications"] == 0 and got["alerts"] == 0 and got["completed_audit"] == 0
    assert set(got["outbox"]) == {"pending"}
    monkeypatch.undo()

    with app.app_context():
        assert outbox.deliver_due() == 0  # too young: it belongs to the process that committed it
        db.session.execute(update(OutboxMessage).values(created_at=utcnow() - timedelta(minutes=1),
                                                        next_attempt_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        delivered = outbox.deliver_due()
        assert delivered == sum(got["outbox"].values())
        assert outbox.deliver_due() == 0
    again = effects(app, run_id)
    assert again["notifications"] == 1 and again["alerts"] >= 1 and again["completed_audit"] == 1
    assert set(again["outbox"]) == {"delivered"}


def test_redelivery_after_a_crash_before_the_delivered_mark_writes_nothing_twice(app, factory, drain):
    """At-least-once delivery: the built-ins are idempotent."""
    run_id, _ = start_failing_run(app, factory)
    drain()
    before = effects(app, run_id)
    with app.app_context():  # as if each delivery's process died before marking it delivered
        db.session.execute(update(OutboxMessage).values(status="pending", claimed_until=None,
                                                        created_at=utcnow() - timedelta(minutes=1),
                                                        next_attempt_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        outbox.deliver_due()
    after = effects(app, run_id)
    assert {k: after[k] for k in ("notifications", "alerts", "completed_audit")} == \
        {k: before[k] for k in ("notifications", "alerts", "completed_audit")}


def test_a_hook_that_raises_is_retried_with_backoff(app, factory, drain, monkeypatch):
    from tenantpilot import notify

    calls = {"n": 0}
    real = notify.tenantpilot_run_completed

    def flaky(run):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("notification store briefly down")
        return real(run)

    # The core notify plugin is the module itself: patch its implementation's function.
    with app.app_context():
        impl = next(i for i in app.extensions["tenantpilot"].pm.hook.tenantpilot_run_completed.get_hookimpls()
                    if i.plugin is notify)
    monkeypatch.setattr(impl, "function", flaky)
    run_id, _ = start_failing_run(app, factory)
    drain()
    got = effects(app, run_id)
    assert got["notifications"] == 0 and got["outbox"].get("pending") == 1
    with app.app_context():
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.run_id == run_id,
                                                            OutboxMessage.status == "pending"))
        assert row.attempts == 1 and row.last_error == "RuntimeError" and row.next_attempt_at > utcnow()
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id)
                           .values(created_at=utcnow() - timedelta(minutes=5), next_attempt_at=utcnow()))
        db.session.commit()
        assert outbox.deliver_due() == 1
    assert effects(app, run_id)["notifications"] == 1


def test_a_telemetry_event_the_database_refused_is_replayed_once(app, factory, monkeypatch):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    real_write = telemetry.write

    def refused(*a, **kw):
        raise RuntimeError("database briefly unavailable")

    with app.app_context():
        monkeypatch.setattr(telemetry, "write", refused)
        assert telemetry.record("product.operations.started", workspace_id=ws.id, tenant_id=tenant.id,
                                metadata={"operation_type": "tests.fanout"}) is True
        monkeypatch.setattr(telemetry, "write", real_write)
        assert spool.pending("telemetry") == 1
        assert db.session.scalar(select(func.count()).select_from(ProductUsageEvent)) == 0
        assert telemetry.replay_spool() == 1
        assert telemetry.replay_spool() == 0
        assert db.session.scalar(select(func.count()).select_from(ProductUsageEvent)) == 1
        assert telemetry.summary("24h").counts["product.operations.started"] == 1  # rollups too


def test_a_replay_that_died_half_way_writes_each_row_once(app):
    """Replays insert by event_uid: a record replayed again (its replay died before the
    spool was trimmed) is not written twice."""
    from tenantpilot import audit

    with app.app_context():
        fields = {"action": "x.replayed", "actor_type": "system", "actor_id": None, "actor_name": "System",
                  "actor_email": None, "workspace_id": None, "tenant_id": None, "target_type": None,
                  "target_id": None, "target_label": None, "status": "success", "summary": "s", "meta": {},
                  "ip": None, "user_agent": None, "recorded_at": utcnow().isoformat(), "event_uid": "a" * 32}
        spool.append("audit", fields)
        spool.append("audit", fields)
        assert audit.replay_spool() == 2
        assert db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "x.replayed")) == 1
