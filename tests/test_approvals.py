"""Four-eyes approval of runbook starts (issue #16): service rules, pages and CLI.

``tests.guarded`` (tests/support/approval_plugin.py) is the rename runbook with the
default approval scopes (all tenants); ``tests.rename`` has ``approval_scopes=()``."""
import re
import threading

import pytest
from sqlalchemy import select, update

from tenantpilot import approvals, runbook_starts
from tenantpilot.approvals import ApprovalRefused
from tenantpilot.extensions import db
from tenantpilot.models import (ApprovalRequest, Notification, OperationalControlActivation,
                                OperationRun, PlatformUser, Tenant)
from tenantpilot.testing import csrf_from, post_form, run_cli, signed_in
from tests.helpers import audit_rows, count, platform_actor, run_row
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


def test_an_approval_interrupted_after_its_claim_is_settled_not_lost(app, world, clock, monkeypatch):
    """The claim commits before the start; a process that dies in between leaves an
    approved request without a run. The scheduled job settles it either way."""
    from tenantpilot.approvals import _transition

    bob = platform_actor(app, world["bob"])
    # 1. Died before the seam made a run: the request waits again, and can be approved.
    lost = make_request(app, world["alice"])
    with app.app_context():
        assert _transition(lost, "approved", bob)  # the claim, then nothing
    clock.advance(minutes=1)
    with app.app_context():
        assert approvals.settle_stalled() == 0  # not stalled yet: a start may still be under way
    clock.advance(minutes=2)
    with app.app_context():
        assert approvals.settle_stalled() == 1
    assert req_row(app, lost).status == "pending" and count(app, OperationRun) == 0
    [reopened] = audit_rows(app, "platform.ops.approvals.reopened")
    assert reopened.meta["request_id"] == lost
    assert approve(app, lost, world["bob"])[:2] == ("approved", "started")
    # 2. Died after the seam made the run: the request gets it and its approved row.
    crashed = make_request(app, world["alice"], kind="workspace", workspace_id=world["ws"].id)
    with app.app_context():
        original_audit = approvals._audit

        def die_at_the_approved_row(step, *args, **kwargs):
            if step == "approved":
                raise RuntimeError("process died")
            return original_audit(step, *args, **kwargs)

        monkeypatch.setattr(approvals, "_audit", die_at_the_approved_row)
        with pytest.raises(RuntimeError):
            approvals.approve(crashed, bob, "RENAME", "cli")
        monkeypatch.setattr(approvals, "_audit", original_audit)
    assert req_row(app, crashed).run_id is None  # the run exists; its id on the request was never committed
    assert count(app, OperationRun) == 2
    clock.advance(minutes=3)
    with app.app_context():
        assert approvals.settle_stalled() == 1
    settled = req_row(app, crashed)
    assert settled.status == "approved" and settled.run_id is not None
    assert run_row(app, settled.run_id).context["approval"]["request_id"] == crashed
    assert [a.meta.get("settled") for a in audit_rows(app, "platform.ops.approvals.approved")] == [None, True]
    assert count(app, OperationRun) == 2  # one per approval, none twice


def test_cli_approval_in_embedded_mode_runs_the_run_before_exiting(make_app):
    """Embedded mode (no Redis): the run's jobs sit on the command's own in-process queue,
    and its embedded worker thread may hold one; the command waits for them all, or the
    run would stay queued forever (found running the walk-through against `make run`)."""
    from tenantpilot.testing import Factory

    app = make_app(plugins=[rename_plugin, approval_plugin], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)
    assert app.extensions["tenantpilot"].embedded
    f = Factory(app)
    ws = f.workspace("Northwind")
    for i in range(3):
        f.tenant(ws, name=f"legacy Northwind {i}")
    alice, _bob = f.platform_user(email="alice@example.test"), f.platform_user(email="bob@example.test")
    request_id = make_request(app, alice)
    ok = run_cli(app, ["approvals", "approve", str(request_id), "--email", "bob@example.test", "--confirm", "RENAME"])
    assert ok.exit_code == 0, ok.output
    run = run_row(app, req_row(app, request_id).run_id)
    assert (run.status, run.outcome, run.tenants_done) == ("completed", "succeeded", 3)


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


# --- pages -----------------------------------------------------------------------------


def request_through_pages(app, client, key=KEY):
    """Operator flow: preflight all tenants → confirm with word and reason → request page."""
    resp = post_form(client, f"/system/ops/runbooks/{key}/preflight", {"kind": "all_tenants"})
    assert resp.status_code == 302
    confirm_url = resp.headers["Location"]
    return post_form(client, f"/system/ops/runbooks/{key}/confirm", {
        "confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": "Legacy names break the export"},
        page=confirm_url)


def approval_id_of(resp) -> int:
    assert resp.status_code == 302, resp.status_code
    m = re.search(r"/system/ops/approvals/(\d+)$", resp.headers["Location"])
    assert m, resp.headers["Location"]
    return int(m.group(1))


def test_confirm_creates_a_request_and_the_requester_waits(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    resp = request_through_pages(app, alice)
    request_id = approval_id_of(resp)
    assert count(app, OperationRun) == 0
    page = alice.get(f"/system/ops/approvals/{request_id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Waiting for approval" in body and "Cancel request" in body
    assert 'data-form="approve"' not in body  # never the requester's to approve
    assert 'data-figure="affected">4<' in body and 'data-drift="0.0"' in body
    # the requester's own POST: refused with the words, nothing started
    resp = post_form(alice, f"/system/ops/approvals/{request_id}/approve", {"confirmation": "RENAME"},
                     page=f"/system/ops/approvals/{request_id}")
    assert resp.status_code == 403 and "You cannot approve your own request." in resp.get_data(as_text=True)
    assert count(app, OperationRun) == 0 and req_row(app, request_id).status == "pending"
    # the nav shows the pending count; a refresh of the confirm POST starts nothing twice
    assert 'data-approvals-pending="1"' in alice.get("/system/ops/runs").get_data(as_text=True)
    # cancel
    resp = post_form(alice, f"/system/ops/approvals/{request_id}/cancel", page=f"/system/ops/approvals/{request_id}")
    assert resp.status_code == 302 and req_row(app, request_id).status == "cancelled"
    assert len(audit_rows(app, "platform.ops.approvals.cancelled")) == 1


def test_a_double_submitted_confirm_makes_one_request(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    resp = post_form(alice, f"/system/ops/runbooks/{KEY}/preflight", {"kind": "all_tenants"})
    page = alice.get(resp.headers["Location"]).get_data(as_text=True)
    from tenantpilot.testing import form_fields
    data = {**form_fields(page, f"/system/ops/runbooks/{KEY}/confirm"), "confirmation": "RENAME",
            "reason_code": "DATA_REPAIR", "reason_text": "Legacy names break the export"}
    first = alice.post(f"/system/ops/runbooks/{KEY}/confirm", data=data)
    second = alice.post(f"/system/ops/runbooks/{KEY}/confirm", data=data)
    assert first.headers["Location"] == second.headers["Location"]
    assert count(app, ApprovalRequest) == 1


def test_approver_sees_both_figures_and_approves_with_the_word(app, world, drain):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    request_id = approval_id_of(request_through_pages(app, alice))
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    listing = bob.get("/system/ops/approvals").get_data(as_text=True)
    assert f'data-approval="{request_id}"' in listing and 'data-pending-count="1"' in listing
    url = f"/system/ops/approvals/{request_id}"
    body = bob.get(url).get_data(as_text=True)
    assert 'data-form="approve"' in body and 'data-form="reject"' in body and "Waiting for approval" not in body
    assert 'data-figure="affected">4<' in body and 'data-figure="affected-now">4<' in body
    # wrong word: next to the field, 422, nothing started
    resp = post_form(bob, f"{url}/approve", {"confirmation": "rename"}, page=url)
    assert resp.status_code == 422 and 'id="confirmation-error"' in resp.get_data(as_text=True)
    assert count(app, OperationRun) == 0
    # bad input never 500s
    for bad in ("RE\x00NAME", "ＲＥＮＡＭＥ", "x" * 5000, ""):
        assert post_form(bob, f"{url}/approve", {"confirmation": bad}, page=url).status_code in (400, 422)
    resp = post_form(bob, f"{url}/approve", {"confirmation": "RENAME"}, page=url)
    assert resp.status_code == 302 and "/system/ops/runs/" in resp.headers["Location"]
    run_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    assert count(app, OperationRun) == 1
    drain()
    run_page = bob.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert f'data-approval-run="{request_id}"' in run_page and 'data-outcome="succeeded"' in run_page
    assert "data-approver>" + world["bob"].name in run_page and "data-requester>" + world["alice"].name in run_page
    assert "4 items across 4 tenants" in run_page
    # the requester's notification leads to the run; refresh of the approve POST is harmless
    assert len(notes(app, world["alice"], "platform.ops.approvals.approved")) == 1
    again = post_form(bob, f"{url}/approve", {"confirmation": "RENAME"}, page=url)
    assert again.status_code == 409 and count(app, OperationRun) == 1


def test_a_double_submitted_approval_starts_one_run(app, world):
    request_id = make_request(app, world["alice"])
    url = f"/system/ops/approvals/{request_id}"
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    from tenantpilot.testing import form_fields
    data = {**form_fields(bob.get(url).get_data(as_text=True), f"{url}/approve"), "confirmation": "RENAME"}
    first, second = bob.post(f"{url}/approve", data=data), bob.post(f"{url}/approve", data=data)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]  # the same run page
    assert count(app, OperationRun) == 1 and len(audit_rows(app, "platform.ops.approvals.approved")) == 1


def test_approver_is_told_of_a_waiting_request_by_the_bell(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    request_id = approval_id_of(request_through_pages(app, alice))
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    [note] = notes(app, world["bob"], "platform.ops.approvals.requested")
    resp = post_form(bob, f"/system/notifications/{note.id}/open", page="/system/notifications")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/system/ops/approvals/{request_id}")


def test_operator_without_the_capability_gets_403_and_a_viewer_reads_only(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    request_id = approval_id_of(request_through_pages(app, alice))
    url = f"/system/ops/approvals/{request_id}"
    runner = signed_in(app, "system", "runner@example.test", "runner-password-1")
    token = csrf_from(runner.get(url).get_data(as_text=True))
    assert runner.post(f"{url}/approve", data={"csrf_token": token, "confirmation": "RENAME"}).status_code == 403
    assert runner.post(f"{url}/reject", data={"csrf_token": token, "reason": "not now please"}).status_code == 403
    assert runner.post(f"{url}/cancel", data={"csrf_token": token}).status_code == 403
    viewer = signed_in(app, "system", "viewer@example.test", "viewer-password-1")
    for page in ("/system/ops/approvals", url, "/system/ops/approvals?status=all"):
        resp = viewer.get(page)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 200 and 'data-form="approve"' not in body and 'data-form="reject"' not in body
    assert f'data-approval="{request_id}"' in viewer.get("/system/ops/approvals").get_data(as_text=True)
    token = csrf_from(viewer.get(url).get_data(as_text=True))
    assert viewer.post(f"{url}/approve", data={"csrf_token": token, "confirmation": "RENAME"}).status_code == 403
    assert viewer.post(f"{url}/approve", data={"confirmation": "RENAME"}).status_code == 400  # CSRF first
    assert count(app, OperationRun) == 0 and req_row(app, request_id).status == "pending"
    assert viewer.get("/system/ops/approvals/999999").status_code == 404
    assert viewer.get("/system/ops/approvals/99999999999999999999").status_code == 404
    assert viewer.get("/system/ops/approvals?status=nope").status_code == 200  # an unknown tab: the pending one
    assert viewer.get("/system/ops/approvals?before=99999999999999999999").status_code == 400  # arg_int's rule
    assert viewer.get("/system/ops/approvals?before=%D9%A3").status_code == 400  # non-ASCII digits
    assert viewer.get("/system/ops/approvals?status=%00").status_code == 400  # control characters: the app-wide rule


def test_reject_through_the_page_needs_a_reason(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    request_id = approval_id_of(request_through_pages(app, alice))
    url = f"/system/ops/approvals/{request_id}"
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    resp = post_form(bob, f"{url}/reject", {"reason": "no"}, page=url)
    assert resp.status_code == 422 and 'id="reason-error"' in resp.get_data(as_text=True)
    resp = post_form(bob, f"{url}/reject", {"reason": "Freeze until Monday"}, page=url)
    assert resp.status_code == 302 and req_row(app, request_id).status == "rejected"
    assert count(app, OperationRun) == 0
    body = bob.get(url).get_data(as_text=True)
    assert "Freeze until Monday" in body and 'data-approval-status="rejected"' in body
    assert 'data-status="rejected"' in bob.get("/system/ops/approvals?status=rejected").get_data(as_text=True)


def test_paused_approval_page_says_so_and_keeps_the_request(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    request_id = approval_id_of(request_through_pages(app, alice))
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.guarded", scope_type="global",
                                                    reason_text="Incident 42"))
        db.session.commit()
    url = f"/system/ops/approvals/{request_id}"
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    resp = post_form(bob, f"{url}/approve", {"confirmation": "RENAME"}, page=url)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409 and 'data-refusal="paused"' in body
    assert "Guarded rename is currently paused. Incident 42" in body
    assert req_row(app, request_id).status == "pending" and count(app, OperationRun) == 0


def test_a_runbook_without_approval_still_starts_at_once(app, world):
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    resp = request_through_pages(app, alice, key="tests.rename")
    assert resp.status_code == 302 and "/system/ops/runs/" in resp.headers["Location"]
    assert count(app, ApprovalRequest) == 0


def test_catalog_and_cli_show_which_scopes_need_approval(app, world):
    body = signed_in(app, "system", "alice@example.test", "alice-password-1").get("/system/ops/runbooks").get_data(
        as_text=True)
    assert 'data-approval-scopes="all_tenants"' in body and 'data-approval-scopes=""' in body
    out = run_cli(app, ["runbooks", "list"]).output
    assert "tests.guarded  Guarded rename" in out and "approval: all_tenants" in out
    assert "tests.rename  Legacy rename" in out and "approval: none" in out


# --- CLI -------------------------------------------------------------------------------


def test_cli_list_approve_reject(app, world, drain):
    first, second = make_request(app, world["alice"]), make_request(app, world["alice"])
    out = run_cli(app, ["approvals", "list"]).output
    assert f"#{first}  [pending]" in out and f"#{second}  [pending]" in out and "alice@example.test" in out
    own = run_cli(app, ["approvals", "approve", str(first), "--email", "alice@example.test", "--confirm", "RENAME"])
    assert own.exit_code != 0 and "You cannot approve your own request." in own.output
    nocap = run_cli(app, ["approvals", "approve", str(first), "--email", "runner@example.test", "--confirm", "RENAME"])
    assert nocap.exit_code != 0 and "[forbidden]" in nocap.output
    wrong = run_cli(app, ["approvals", "approve", str(first), "--email", "bob@example.test", "--confirm", "nope"])
    assert wrong.exit_code != 0 and "--confirm: Type RENAME exactly" in wrong.output
    assert run_cli(app, ["approvals", "approve", "0", "--email", "bob@example.test", "--confirm", "X"]).exit_code != 0
    assert count(app, OperationRun) == 0
    ok = run_cli(app, ["approvals", "approve", str(first), "--email", "bob@example.test", "--confirm", "RENAME"])
    assert ok.exit_code == 0 and f"Request #{first} approved by bob@example.test" in ok.output
    with app.app_context():
        run = db.session.scalars(select(OperationRun)).one()
        assert run.context["source"] == "cli" and run.context["approval"]["approver"]["id"] == world["bob"].id
    bad = run_cli(app, ["approvals", "reject", str(second), "--email", "carol@example.test", "--reason", "no"])
    assert bad.exit_code != 0 and "--reason:" in bad.output
    ok = run_cli(app, ["approvals", "reject", str(second), "--email", "carol@example.test", "--reason", "Not this week"])
    assert ok.exit_code == 0 and req_row(app, second).status == "rejected"
    assert count(app, OperationRun) == 1
    out = run_cli(app, ["approvals", "list", "--status", "all"]).output
    assert f"#{first}  [approved]" in out and f"#{second}  [rejected]" in out


def test_a_paused_runbook_cannot_even_be_requested(app, world):
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.guarded", scope_type="global",
                                                    reason_text="Incident 42"))
        db.session.commit()
    alice = signed_in(app, "system", "alice@example.test", "alice-password-1")
    resp = request_through_pages(app, alice)
    assert resp.status_code == 409
    assert resp.get_data(as_text=True).count("Guarded rename is currently paused. Incident 42") == 1
    assert count(app, ApprovalRequest) == 0 and count(app, OperationRun) == 0
    assert len(audit_rows(app, "operational_control.execution_blocked")) == 1


def test_expired_request_page_offers_no_approval(app, world, clock):
    request_id = make_request(app, world["alice"])
    clock.advance(minutes=61)
    bob = signed_in(app, "system", "bob@example.test", "bob-password-1")
    url = f"/system/ops/approvals/{request_id}"
    body = bob.get(url).get_data(as_text=True)
    assert "past its expiry" in body and 'data-form="approve"' not in body
    token = csrf_from(body)
    resp = bob.post(f"{url}/approve", data={"csrf_token": token, "confirmation": "RENAME"})
    assert resp.status_code == 409 and 'data-refusal="expired"' in resp.get_data(as_text=True)
    assert req_row(app, request_id).status == "expired" and count(app, OperationRun) == 0


def test_a_waiting_request_goes_to_the_alert_channels_too(make_app, factory):
    from tenantpilot import alerts
    from tenantpilot.models import AlertDelivery

    app = make_app(plugins=[rename_plugin, approval_plugin], ALERT_WEBHOOK_URL="https://hooks.example.test/x?token=s",
                   SMTP_HOST="127.0.0.1", ALERT_EMAIL_TO="ops@example.test")
    f = type(factory)(app)
    f.tenant(f.workspace("Northwind"), name="legacy One")
    alice = f.platform_user(email="alice@example.test", password="alice-password-1")
    f.platform_user(email="bob@example.test", password="bob-password-1")
    request_id = make_request(app, alice)
    with app.app_context():
        rows = db.session.scalars(select(AlertDelivery).order_by(AlertDelivery.id)).all()
        assert [(r.event, r.destination_type, r.run_id) for r in rows] == [
            ("platform.ops.approvals.requested", "email", None), ("platform.ops.approvals.requested", "webhook", None)]
        payload = rows[0].payload
        assert payload["request_id"] == request_id and payload["path"] == f"/system/ops/approvals/{request_id}"
        assert "token" not in rows[1].destination and "alice@example.test" not in str(payload)
        assert f"/system/ops/approvals/{request_id}" in alerts.render_text(payload)
    page = signed_in(app, "system", "bob@example.test", "bob-password-1").get("/system/ops/alerts").get_data(as_text=True)
    assert f"Approval request #{request_id}" in page
