"""Four-eyes approval of runbook starts (issue #16): service rules, pages and CLI.

``tests.guarded`` (tests/support/approval_plugin.py) is the rename runbook with the
default approval scopes (all tenants); ``tests.rename`` has ``approval_scopes=()``."""
import threading

import pytest
from sqlalchemy import select, update

from tenantpilot import approvals, runbook_starts
from tenantpilot.approvals import ApprovalRefused
from tenantpilot.extensions import db
from tenantpilot.models import (ApprovalRequest, Notification, OperationalControlActivation,
                                OperationRun, PlatformUser, Tenant)
from tests.helpers import audit_rows, count, platform_actor
from tests.support import approval_plugin, rename_plugin

KEY = "tests.guarded"
VIEW_ONLY = ["platform.access_system_panel", "platform.ops.view", "platform.runbooks.view"]


@pytest.fixture
def app(make_app):
    rename_plugin.ALWAYS_FAIL["on"] = False
    return make_app(plugins=[rename_plugin, approval_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=5)


@pytest.fixture
def world(app, factory):
    ws, ws2 = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    tenants = [factory.tenant(ws, name=f"legacy Northwind {i}") for i in range(3)]
    tenants += [factory.tenant(ws2, name="Fabrikam clean"), factory.tenant(ws2, name="legacy Fabrikam")]
    alice = factory.platform_user(email="alice@example.test", password="alice-password-1")
    bob = factory.platform_user(email="bob@example.test", password="bob-password-1")
    carol = factory.platform_user(email="carol@example.test", password="carol-password-1")
    viewer = factory.platform_user(email="viewer@example.test", password="viewer-password-1", capabilities=VIEW_ONLY)
    runner = factory.platform_user(email="runner@example.test", password="runner-password-1", capabilities=[
        c for c in app.extensions["tenantpilot"].registry.platform_capabilities if c != approvals.APPROVE_CAPABILITY])
    return {"ws": ws, "ws2": ws2, "tenants": tenants, "alice": alice, "bob": bob, "carol": carol,
            "viewer": viewer, "runner": runner}


def runbook(app, key=KEY):
    return app.extensions["tenantpilot"].registry.runbooks[key]


def make_request(app, user, kind="all_tenants", key=KEY, **scope) -> int:
    """A pending request by ``user`` through the service (preflight stored first)."""
    actor = platform_actor(app, user)
    with app.app_context():
        rb = runbook(app, key)
        scope = runbook_starts.normalized_scope(kind, scope.get("workspace_id"), scope.get("tenant_id"))
        event, _ = runbook_starts.record_preflight(rb, scope, actor)
        req = approvals.request(rb, event, actor, "DATA_REPAIR", "Legacy names break the export", "system_ui")
        return req.id


def req_row(app, request_id):
    with app.app_context():
        req = db.session.get(ApprovalRequest, request_id)
        db.session.expunge(req)
        return req


def approve(app, request_id, user, word="RENAME", source="system_ui"):
    actor = platform_actor(app, user)
    with app.app_context():
        req, outcome = approvals.approve(request_id, actor, word, source)
        return req.status, outcome.status, outcome.run.id


def refused(app, fn, *args):
    with app.app_context():
        with pytest.raises(ApprovalRefused) as err:
            fn(*args)
        return err.value


def notes(app, user, kind):
    with app.app_context():
        return db.session.scalars(select(Notification).where(Notification.platform_user_id == user.id,
                                                             Notification.kind == kind)).all()


# --- rules -----------------------------------------------------------------------------


def test_which_scopes_need_approval(app, make_app):
    with app.app_context():
        guarded, rename = runbook(app), runbook(app, "tests.rename")
        assert guarded.approval_scopes == ("all_tenants",) and approvals.approval_scopes(guarded) == ("all_tenants",)
        assert approvals.needs_approval(guarded, {"kind": "all_tenants"})
        assert not approvals.needs_approval(guarded, {"kind": "workspace"})
        assert not approvals.needs_approval(rename, {"kind": "all_tenants"})
    strict = make_app(plugins=[rename_plugin, approval_plugin], TENANTPILOT_APPROVAL_REQUIRED_SCOPES="workspace, all_tenants")
    with strict.app_context():
        assert approvals.needs_approval(runbook(strict, "tests.rename"), {"kind": "workspace"})
        assert approvals.needs_approval(runbook(strict, "tests.rename"), {"kind": "all_tenants"})
        assert not approvals.needs_approval(runbook(strict, "tests.rename"), {"kind": "single_tenant"})


def test_runbook_definition_validates_approval_scopes():
    from tenantpilot.api import DefinitionError, Runbook

    base = dict(key="x.y", label="X", description="", capability="platform.runbooks.x.y", confirmation_word="GO",
                execute_tenant=lambda job: {}, preflight=lambda scope: {})
    assert Runbook(**base).approval_scopes == ("all_tenants",)
    assert Runbook(**base, changes_data=False).approval_scopes == ()
    assert Runbook(**base, approval_scopes=("workspace",)).approval_scopes == ("workspace",)
    with pytest.raises(DefinitionError):
        Runbook(**base, approval_scopes=("everything",))


# --- request → approve ---------------------------------------------------------------------


def test_request_notifies_approvers_and_audits(app, world):
    request_id = make_request(app, world["alice"])
    req = req_row(app, request_id)
    assert req.status == "pending" and req.preflight_result["affected_count"] == 4
    assert (req.expires_at - req.created_at).total_seconds() == 3600
    assert count(app, OperationRun) == 0
    [row] = audit_rows(app, "platform.ops.approvals.requested")
    assert row.meta["preflight_audit_id"] == req.preflight_audit_id and row.actor_id == world["alice"].id
    # approvers: bob and carol (approve + the runbook capability); never alice, the viewer or the runner
    assert len(notes(app, world["bob"], "platform.ops.approvals.requested")) == 1
    assert len(notes(app, world["carol"], "platform.ops.approvals.requested")) == 1
    for who in ("alice", "viewer", "runner"):
        assert notes(app, world[who], "platform.ops.approvals.requested") == []


def test_approve_starts_one_run_as_the_requester_with_the_approver_in_context(app, world, drain):
    request_id = make_request(app, world["alice"])
    status, outcome, run_id = approve(app, request_id, world["bob"])
    assert (status, outcome) == ("approved", "started")
    assert count(app, OperationRun) == 1
    with app.app_context():
        run = db.session.get(OperationRun, run_id)
        assert run.initiator_platform_user_id == world["alice"].id
        approval = run.context["approval"]
        assert approval["approver"] == {"id": world["bob"].id, "name": world["bob"].name}
        assert approval["requester"]["id"] == world["alice"].id and approval["request_id"] == request_id
        assert approval["approved_figures"]["affected_count"] == 4
    req = req_row(app, request_id)
    assert req.run_id == run_id and req.decided_by_id == world["bob"].id
    [row] = audit_rows(app, "platform.ops.approvals.approved")
    assert row.actor_id == world["bob"].id and row.meta["run_id"] == run_id
    assert row.meta["preflight_audit_id"] == req.preflight_audit_id
    assert len(notes(app, world["alice"], "platform.ops.approvals.approved")) == 1
    drain()
    with app.app_context():
        assert db.session.get(OperationRun, run_id).outcome == "succeeded"
    # a second approval of the same request: refused, still one run
    err = refused(app, approvals.approve, request_id, platform_actor(app, world["carol"]), "RENAME", "cli")
    assert (err.slug, err.status) == ("already-decided", 409)
    assert count(app, OperationRun) == 1


def test_requester_cannot_approve_own_request_even_with_break_glass(app, world):
    request_id = make_request(app, world["alice"])
    with app.app_context():
        actor = approvals.Actor.platform(db.session.get(PlatformUser, world["alice"].id), break_glass=True)
        with pytest.raises(ApprovalRefused) as err:
            approvals.approve(request_id, actor, "RENAME", "system_ui")
    assert (err.value.slug, err.value.status, err.value.message) == (
        "own-request", 403, "You cannot approve your own request.")
    assert count(app, OperationRun) == 0 and req_row(app, request_id).status == "pending"


def test_without_the_capability_nothing_is_decided(app, world):
    request_id = make_request(app, world["alice"])
    for who in ("runner", "viewer"):
        err = refused(app, approvals.approve, request_id, platform_actor(app, world[who]), "RENAME", "cli")
        assert (err.slug, err.status) == ("forbidden", 403)
        err = refused(app, approvals.reject, request_id, platform_actor(app, world[who]), "not today", "cli")
        assert (err.slug, err.status) == ("forbidden", 403)
    assert refused(app, approvals.approve, 999999, platform_actor(app, world["bob"]), "RENAME", "cli").status == 404
    assert req_row(app, request_id).status == "pending" and count(app, OperationRun) == 0


def test_wrong_word_is_a_field_error(app, world):
    request_id = make_request(app, world["alice"])
    err = refused(app, approvals.approve, request_id, platform_actor(app, world["bob"]), "rename", "cli")
    assert (err.field, err.status) == ("confirmation", 422) and "Type RENAME exactly" in err.message
    assert req_row(app, request_id).status == "pending"


def test_reject_starts_nothing(app, world):
    request_id = make_request(app, world["alice"])
    bob = platform_actor(app, world["bob"])
    assert refused(app, approvals.reject, request_id, bob, "no", "cli").field == "reason"
    assert refused(app, approvals.reject, request_id, platform_actor(app, world["alice"]), "mine",
                   "cli").slug == "own-request"
    with app.app_context():
        assert approvals.reject(request_id, bob, "Wait for the release freeze to end", "cli").status == "rejected"
    assert count(app, OperationRun) == 0
    [row] = audit_rows(app, "platform.ops.approvals.rejected")
    assert row.meta["decision_reason"] == "Wait for the release freeze to end"
    assert len(notes(app, world["alice"], "platform.ops.approvals.rejected")) == 1
    assert refused(app, approvals.approve, request_id, bob, "RENAME", "cli").slug == "already-decided"


def test_cancel_is_the_requesters_only(app, world):
    request_id = make_request(app, world["alice"])
    assert refused(app, approvals.cancel, request_id, platform_actor(app, world["bob"]), "cli").status == 403
    with app.app_context():
        assert approvals.cancel(request_id, platform_actor(app, world["alice"]), "cli").status == "cancelled"
    assert len(audit_rows(app, "platform.ops.approvals.cancelled")) == 1
    assert refused(app, approvals.approve, request_id, platform_actor(app, world["bob"]), "RENAME",
                   "cli").slug == "already-decided"


def test_expiry_starts_nothing_and_is_audited(app, world, clock):
    request_id = make_request(app, world["alice"])
    clock.advance(minutes=61)
    err = refused(app, approvals.approve, request_id, platform_actor(app, world["bob"]), "RENAME", "cli")
    assert (err.slug, err.status) == ("expired", 409)
    assert req_row(app, request_id).status == "expired" and count(app, OperationRun) == 0
    assert len(audit_rows(app, "platform.ops.approvals.expired")) == 1
    assert len(notes(app, world["alice"], "platform.ops.approvals.expired")) == 1
    # the scheduled job finds the others
    clock.advance(minutes=-61)
    second = make_request(app, world["alice"])
    clock.advance(minutes=61)
    with app.app_context():
        assert approvals.expire_due() == 1
        assert approvals.expire_due() == 0
    assert req_row(app, second).status == "expired" and len(audit_rows(app, "platform.ops.approvals.expired")) == 2


def test_pause_between_request_and_approval_blocks_and_keeps_it_pending(app, world, factory):
    request_id = make_request(app, world["alice"])
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.guarded", scope_type="global",
                                                    reason_text="Incident 42"))
        db.session.commit()
    err = refused(app, approvals.approve, request_id, platform_actor(app, world["bob"]), "RENAME", "cli")
    assert (err.slug, err.status) == ("paused", 409)
    assert "Guarded rename is currently paused" in err.message and "Incident 42" in err.message
    assert req_row(app, request_id).status == "pending" and count(app, OperationRun) == 0
    assert len(audit_rows(app, "operational_control.execution_blocked")) == 1
    assert audit_rows(app, "platform.ops.approvals.approved") == []


def test_drift_refuses_and_asks_for_a_new_preflight(app, world):
    request_id = make_request(app, world["alice"])
    with app.app_context():
        db.session.execute(update(Tenant).where(Tenant.name == "legacy Fabrikam").values(name="Fabrikam 2"))
        db.session.commit()
    err = refused(app, approvals.approve, request_id, platform_actor(app, world["bob"]), "RENAME", "cli")
    assert err.slug == "drift" and "new preflight" in err.message and "4 items" in err.message
    assert req_row(app, request_id).status == "pending" and count(app, OperationRun) == 0


def test_two_approvers_at_once_give_one_run(app, world):
    request_id = make_request(app, world["alice"])
    actors = [platform_actor(app, world["bob"]), platform_actor(app, world["carol"])]
    results, barrier = [], threading.Barrier(2)

    def go(actor):
        with app.app_context():
            barrier.wait()
            try:
                approvals.approve(request_id, actor, "RENAME", "cli")
                results.append("approved")
            except ApprovalRefused as exc:
                results.append(exc.slug)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=go, args=(a,)) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already-decided", "approved"]
    assert count(app, OperationRun) == 1 and len(audit_rows(app, "platform.ops.approvals.approved")) == 1


def test_second_approval_after_the_first_committed_claims_nothing(app, world):
    request_id = make_request(app, world["alice"])
    with app.app_context():
        # the conditional UPDATE itself: once one approver won, the next finds nothing pending
        assert approvals._transition(request_id, "approved", platform_actor(app, world["bob"])) is True
        assert approvals._transition(request_id, "approved", platform_actor(app, world["carol"])) is False
