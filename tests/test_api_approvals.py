"""/system/api/v1/approvals and the API start of an approval scope (issues 15 + 16): the
same refusals as the approval pages — own request 403, no capability 403, wrong word 422,
already decided / expired / drift / paused 409 — one run per approval, audit rows that
name the token."""
import pytest
from tenantpilot.extensions import db
from tenantpilot.models import ApprovalRequest, OperationalControlActivation, OperationRun
from tenantpilot.testing import api_client
from tests.helpers import audit_rows, count, run_row
from tests.support import approval_plugin, rename_plugin

KEY = "tests.guarded"
API = "/system/api/v1"
START = {"confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": "Legacy names break exports"}


@pytest.fixture
def app(make_app):
    rename_plugin.ALWAYS_FAIL["on"] = False
    return make_app(plugins=[rename_plugin, approval_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=5)


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Northwind")
    tenants = [factory.tenant(ws, name=f"legacy Northwind {i}") for i in range(3)]
    for email in ("alice@example.test", "bob@example.test"):
        factory.platform_user(email=email)
    factory.platform_user(email="viewer@example.test", capabilities=[
        "platform.access_system_panel", "platform.ops.view", "platform.runbooks.view"])
    return {"ws": ws, "tenants": tenants}


@pytest.fixture
def alice(app, world):
    return api_client(app, "system", "alice@example.test", name="alice bot")


@pytest.fixture
def bob(app, world):
    return api_client(app, "system", "bob@example.test", name="bob bot")


def requested(api, scope=None, headers=None):
    pf = api.post(f"{API}/runbooks/{KEY}/preflight", json={"scope": scope or {"kind": "all_tenants"}}).json
    resp = api.post(f"{API}/runbooks/{KEY}/start", json={"preflight_id": pf["preflight_id"], **START},
                    headers=headers)
    return resp


def test_an_approval_scope_start_answers_202_and_starts_nothing(app, alice):
    resp = requested(alice)
    assert resp.status_code == 202 and resp.json["status"] == "approval_requested"
    approval = resp.json["approval"]
    assert approval["status"] == "pending" and approval["runbook"] == KEY and approval["may_decide"] is False
    assert approval["approved_figures"]["affected_count"] == 3 and approval["requester"]["name"].startswith("Operator")
    assert count(app, OperationRun) == 0
    [row] = audit_rows(app, "platform.ops.approvals.requested")
    assert row.meta["api_token"]["name"] == "alice bot" and row.meta["preflight_audit_id"] == approval["preflight_audit_id"]


def test_a_single_tenant_needs_no_approval(app, alice, world):
    resp = requested(alice, {"kind": "single_tenant", "tenant_id": world["tenants"][0].id})
    assert resp.status_code == 201 and resp.json["status"] == "started"


def test_requester_cannot_approve_and_another_approver_starts_one_run(app, alice, bob, drain):
    approval = requested(alice).json["approval"]
    own = alice.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert own.status_code == 403 and own.json["type"] == "urn:tenantpilot:problem:own-request"
    wrong = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "rename"})
    assert wrong.status_code == 422 and "Type RENAME exactly" in wrong.json["errors"]["confirmation"][0]
    detail = bob.get(f"{API}/approvals/{approval['id']}").json
    assert detail["may_decide"] is True and detail["recount"]["affected_count"] == 3 and detail["drift_percent"] == 0.0
    ok = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert ok.status_code == 201 and ok.json["approval"]["status"] == "approved"
    run = run_row(app, ok.json["run"]["id"])
    assert run.context["approval"]["approver"]["name"] == ok.json["approval"]["decided_by"]["name"]
    assert run.initiator_platform_user_id == approval["requester"]["id"]  # started as the requester
    again = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert again.status_code == 409 and again.json["type"] == "urn:tenantpilot:problem:already-decided"
    assert count(app, OperationRun) == 1
    [row] = audit_rows(app, "platform.ops.approvals.approved")
    assert row.meta["api_token"]["name"] == "bob bot"
    drain()
    assert run_row(app, run.id).outcome == "succeeded"


def test_reject_cancel_and_a_viewer(app, alice, bob):
    first = requested(alice).json["approval"]
    short = bob.post(f"{API}/approvals/{first['id']}/reject", json={"reason": "no"})
    assert short.status_code == 422 and "reason" in short.json["errors"]
    nul = bob.post(f"{API}/approvals/{first['id']}/reject", json={"reason": "bad\x00reason"})
    assert nul.status_code == 422
    rejected = bob.post(f"{API}/approvals/{first['id']}/reject", json={"reason": "Not during the audit week"})
    assert rejected.status_code == 200 and rejected.json["approval"]["status"] == "rejected"
    assert rejected.json["approval"]["decision_reason"] == "Not during the audit week" and count(app, OperationRun) == 0
    second = requested(alice).json["approval"]
    assert bob.post(f"{API}/approvals/{second['id']}/cancel").status_code == 403  # only the requester
    assert alice.post(f"{API}/approvals/{second['id']}/cancel").json["approval"]["status"] == "cancelled"
    viewer = api_client(app, "system", "viewer@example.test")
    listing = viewer.get(f"{API}/approvals").json
    assert [a["status"] for a in listing["approvals"]] == ["cancelled", "rejected"] and listing["pending_count"] == 0
    assert viewer.get(f"{API}/approvals?status=rejected").json["approvals"][0]["id"] == first["id"]
    third = requested(alice).json["approval"]
    denied = viewer.post(f"{API}/approvals/{third['id']}/approve", json={"confirmation": "RENAME"})
    assert denied.status_code == 403 and count(app, OperationRun) == 0
    # A token of an approver without the approve capability is refused the same way.
    narrow = api_client(app, "system", "bob@example.test", capabilities=[
        "platform.ops.view", "platform.runbooks.view", "platform.runbooks.run", "platform.runbooks.tests.guarded"])
    assert narrow.post(f"{API}/approvals/{third['id']}/approve", json={"confirmation": "RENAME"}).status_code == 403
    for bad in ("/approvals/999999", "/approvals/99999999999", "/approvals/\u0661", "/approvals?status=maybe",
                "/approvals?limit=999999999999", "/approvals?cursor=%00"):
        assert viewer.get(API + bad).status_code in (400, 404, 422), bad


def test_pause_drift_and_expiry_refuse_the_approval(app, alice, bob, factory, world, clock):
    approval = requested(alice).json["approval"]
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.guarded", scope_type="global",
                                                    reason_text="Export vendor incident"))
        db.session.commit()
    paused = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert paused.status_code == 409 and paused.json["type"] == "urn:tenantpilot:problem:paused"
    assert "Export vendor incident" in paused.json["detail"]
    assert bob.get(f"{API}/approvals/{approval['id']}").json["status"] == "pending" and count(app, OperationRun) == 0
    with app.app_context():
        db.session.execute(OperationalControlActivation.__table__.delete())
        db.session.commit()
    factory.tenant(world["ws"], name="legacy late arrival")  # 3 → 4 affected: 33% drift
    drift = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert drift.status_code == 409 and drift.json["type"] == "urn:tenantpilot:problem:drift"
    clock.advance(minutes=61)
    expired = bob.post(f"{API}/approvals/{approval['id']}/approve", json={"confirmation": "RENAME"})
    assert expired.status_code == 409 and expired.json["type"] == "urn:tenantpilot:problem:expired"
    assert len(audit_rows(app, "platform.ops.approvals.expired")) == 1 and count(app, OperationRun) == 0


def test_a_retried_start_with_the_same_key_makes_one_request(app, alice):
    key = {"Idempotency-Key": "approval-retry-1"}
    first, second = requested(alice, headers=key), requested(alice, headers=key)
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json["approval"]["id"] == second.json["approval"]["id"]
    assert count(app, ApprovalRequest) == 1 and len(audit_rows(app, "platform.ops.approvals.requested")) == 1
