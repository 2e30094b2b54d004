"""The restore API (/admin/api/v1/tenants/<tenant>/restore/…): dry run and execute with
the wizard's rules — 404 for non-members and foreign ids, 403 without tenant.manage +
restore.execute (or with a token narrower than its owner), the tenant's name typed
exactly, and the restore.execute control before anything exists."""
import pytest
from sqlalchemy import delete

from restore_helpers import (PAUSE_REASON, backup_payloads, capture, connect, drift, item_ids, pause, signed_in,
                             sim_calls, sim_state)
from tenantpilot.sdk import Membership, OperationRun, db
from tenantpilot.testing import api_client
from tenantpilot_restore import plugin
from tenantpilot_restore.models import RestoreRun, RestoreRunItem
from tenantpilot_simulated import plugin as simulated
from tests.helpers import audit_rows, count, queued_jobs

PROBLEM = "urn:tenantpilot:problem:"
TENANT = "Alpha Tenant"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated])


@pytest.fixture
def world(app, factory, drain):
    ws, ws_other = factory.workspace("Workspace A"), factory.workspace("Workspace B")
    tenant, other = factory.tenant(ws, name=TENANT), factory.tenant(ws_other, name="Bravo Tenant")
    for t in (tenant, other):
        connect(app, t)
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(ws_other, "owner")])
    backup = capture(app, signed_in(app, "admin", "manager@example.test"), tenant, drain)
    other_backup = capture(app, signed_in(app, "admin", "outsider@example.test"), other, drain)
    drift(app, tenant, 2)
    return tenant, other, users, backup, other_backup


def client(app, role, **kw):
    return api_client(app, "admin", f"{role}@example.test", **kw)


def dry_run(api, tenant, body):
    return api.post(f"/admin/api/v1/tenants/{tenant.id}/restore/dry-run", json=body)


def execute(api, tenant, body):
    return api.post(f"/admin/api/v1/tenants/{tenant.id}/restore/execute", json=body)


def assert_problem(resp, status, slug):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == PROBLEM + slug and body["status"] == status
    return body


def nothing_executed(app):
    """No executed restore, no execute run, no job (dry runs aside)."""
    return (count(app, RestoreRun, RestoreRun.kind == "execute") == 0
            and count(app, OperationRun, OperationRun.type == "restore.execute") == 0 and queued_jobs(app) == 0)


# --- dry run --------------------------------------------------------------------------------

def test_dry_run_records_the_preview_and_applies_nothing(app, world):
    tenant, _, users, backup, _ = world
    drifted = sim_state(app, tenant)
    api = client(app, "manager")
    resp = dry_run(api, tenant, {"backup_set_id": backup.id})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["kind"], body["scope"], body["item_count"], body["would_change"]) == ("dry_run", "all", 7, 2)
    assert len(body["items"]) == 7 and sum(i["action"] == "update" for i in body["items"]) == 2
    changed = next(i for i in body["items"] if i["action"] == "update")
    assert changed["changes"] and {"path", "current", "backup"} <= set(changed["changes"][0])
    assert {c["key"] for c in body["checks"]} >= {"tenant_active", "provider_connection", "restore_control"}
    assert body["page_url"] == f"/admin/t/{tenant.id}/restore-runs/{body['restore_run_id']}"
    assert sim_state(app, tenant) == drifted  # nothing applied
    with app.app_context():
        rr = db.session.get(RestoreRun, body["restore_run_id"])
        assert (rr.kind, rr.operation_run_id, rr.requested_by_user_id) == ("dry_run", None, users["manager"].id)
    assert count(app, RestoreRun) == 1 and count(app, RestoreRunItem) == 7 and nothing_executed(app)
    [event] = audit_rows(app, "restore.dry_run_recorded")
    assert event.meta["api_token"]["id"] == api.token_id and event.tenant_id == tenant.id


def test_dry_run_of_selected_items(app, world):
    tenant, _, _, backup, _ = world
    ids = item_ids(app, backup.id)[:2]
    body = dry_run(client(app, "owner"), tenant, {"backup_set_id": backup.id, "scope": "selected",
                                                  "item_ids": ids}).get_json()
    assert [i["backup_item_id"] for i in body["items"]] == ids and body["scope"] == "selected"
    resp = dry_run(client(app, "owner"), tenant, {"backup_set_id": backup.id, "scope": "selected", "item_ids": []})
    assert set(assert_problem(resp, 422, "validation")["errors"]) == {"item_ids"}


def test_dry_run_is_allowed_while_execution_is_paused(app, world):
    tenant, _, _, backup, _ = world
    pause(app)
    body = dry_run(client(app, "manager"), tenant, {"backup_set_id": backup.id}).get_json()
    check = next(c for c in body["checks"] if c["key"] == "restore_control")
    assert check["status"] == "warn" and PAUSE_REASON in check["message"]


# --- execute --------------------------------------------------------------------------------

def test_execute_restores_the_backup_and_a_second_post_is_deduped(app, world, drain):
    tenant, _, users, backup, _ = world
    api = client(app, "manager")
    body = {"backup_set_id": backup.id, "confirmation": TENANT}
    resp = execute(api, tenant, body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    data = resp.get_json()
    with app.app_context():
        rr = db.session.get(RestoreRun, data["restore_run_id"])
        run = db.session.get(OperationRun, rr.operation_run_id)
        assert (rr.kind, rr.item_count, run.type, run.context["source"]) == ("execute", 7, "restore.execute", "api")
        assert run.context["initiator"]["api_token"]["id"] == api.token_id
    assert data["status"] == "started" and data["run"]["id"] == run.id
    assert data["message"] == f"Restore #{rr.id} started (operation run #{run.id})."
    assert data["run"]["url"] == f"/admin/api/v1/tenants/{tenant.id}/runs/{run.id}"
    assert queued_jobs(app) == 1
    again = execute(api, tenant, body)
    assert again.status_code == 200 and again.get_json()["status"] == "deduped"
    assert again.get_json()["restore_run_id"] == rr.id and count(app, RestoreRun) == 1 and queued_jobs(app) == 1
    [started] = audit_rows(app, "restore.execution_started")
    assert started.meta["api_token"]["id"] == api.token_id

    drain()
    assert sim_state(app, tenant) == backup_payloads(app, backup.id)
    status = api.get(data["run"]["url"]).get_json()
    assert (status["status"], status["outcome"], status["summary_counts"]["applied"]) == ("completed", "succeeded", 2)


@pytest.mark.parametrize("typed", ["alpha tenant", "Alpha", "", "Alpha Tenant!", "Bravo Tenant"])
def test_a_wrong_typed_name_is_422_naming_confirmation_and_creates_nothing(app, world, typed):
    tenant, _, _, backup, _ = world
    calls = len(sim_calls(app, tenant))
    body = assert_problem(execute(client(app, "manager"), tenant, {"backup_set_id": backup.id, "confirmation": typed}),
                          422, "validation")
    assert list(body["errors"]) == ["confirmation"] and TENANT in body["errors"]["confirmation"][0]
    assert nothing_executed(app) and len(sim_calls(app, tenant)) == calls


def test_surrounding_spaces_in_the_typed_name_are_forgiven_as_on_the_page(app, world):
    tenant, _, _, backup, _ = world
    resp = execute(client(app, "owner"), tenant, {"backup_set_id": backup.id, "confirmation": f"  {TENANT} "})
    assert resp.status_code == 201


@pytest.mark.parametrize("scope_type", ["global", "workspace"])
def test_paused_execute_is_a_409_problem_and_nothing_exists(app, world, scope_type):
    tenant, _, _, backup, _ = world
    pause(app, scope_type, tenant.workspace_id if scope_type == "workspace" else None)
    calls = len(sim_calls(app, tenant))
    api = client(app, "manager")
    body = assert_problem(execute(api, tenant, {"backup_set_id": backup.id, "confirmation": TENANT}), 409, "paused")
    assert body["title"] == "Restore execution paused" and body["reason"] == PAUSE_REASON
    assert PAUSE_REASON in body["detail"] and body["control_key"] == "restore.execute"
    assert nothing_executed(app) and count(app, RestoreRunItem) == 0
    assert len(sim_calls(app, tenant)) == calls  # no provider call at all
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert event.meta["source"] == "api" and event.meta["api_token"]["id"] == api.token_id


# --- who may --------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["operator", "readonly"])
def test_members_without_restore_capabilities_get_403(app, world, role):
    tenant, _, _, backup, _ = world
    api = client(app, role)
    assert_problem(dry_run(api, tenant, {"backup_set_id": backup.id}), 403, "forbidden")
    assert_problem(execute(api, tenant, {"backup_set_id": backup.id, "confirmation": TENANT}), 403, "forbidden")
    assert count(app, RestoreRun) == 0 and nothing_executed(app)


def test_non_members_get_404_and_foreign_ids_are_404(app, world):
    tenant, other, _, backup, other_backup = world
    outsider = client(app, "outsider")
    assert_problem(dry_run(outsider, tenant, {"backup_set_id": backup.id}), 404, "not-found")
    assert_problem(execute(outsider, tenant, {"backup_set_id": backup.id, "confirmation": TENANT}), 404, "not-found")
    manager = client(app, "manager")
    assert_problem(dry_run(manager, other, {"backup_set_id": other_backup.id}), 404, "not-found")
    assert_problem(dry_run(manager, tenant, {"backup_set_id": other_backup.id}), 404, "not-found")
    foreign_item = item_ids(app, other_backup.id)[0]
    assert_problem(execute(manager, tenant, {"backup_set_id": backup.id, "scope": "selected",
                                             "item_ids": [foreign_item], "confirmation": TENANT}), 404, "not-found")
    assert count(app, RestoreRun) == 0 and nothing_executed(app)


def test_a_token_narrower_than_its_owner_is_403_and_audited(app, world):
    tenant, _, users, backup, _ = world
    api = client(app, "owner", capabilities=["tenant.view", "tenant.manage"])
    assert_problem(execute(api, tenant, {"backup_set_id": backup.id, "confirmation": TENANT}), 403, "forbidden")
    assert_problem(dry_run(api, tenant, {"backup_set_id": backup.id}), 403, "forbidden")
    assert count(app, RestoreRun) == 0 and nothing_executed(app)
    denied = audit_rows(app, "tenant.api_token.denied")
    assert len(denied) == 2 and {d.meta["reason"] for d in denied} == {"missing_capability"}
    assert all(d.meta["api_token"]["id"] == api.token_id and d.actor_id == users["owner"].id for d in denied)


def test_removed_membership_after_token_creation_is_404(app, world):
    tenant, _, users, backup, _ = world
    api = client(app, "manager")
    with app.app_context():
        db.session.execute(delete(Membership).where(Membership.user_id == users["manager"].id))
        db.session.commit()
    assert_problem(execute(api, tenant, {"backup_set_id": backup.id, "confirmation": TENANT}), 404, "not-found")
    assert nothing_executed(app)


@pytest.mark.parametrize("body", [
    {"backup_set_id": 2**31},
    {"backup_set_id": 10**30},
    {"backup_set_id": -1},
    {"backup_set_id": "١"},
    {"backup_set_id": "1"},
    {"backup_set_id": 1.5},
    {"backup_set_id": None},
    {"backup_set_id": True},
    {"backup_set_id": [1]},
    {},
    {"backup_set_id": 1, "scope": "selected", "item_ids": [10**20]},
    {"backup_set_id": 1, "scope": "selected", "item_ids": ["٣"]},
    {"backup_set_id": 1, "scope": "every\x00thing"},
    {"backup_set_id": 1, "confirmation": "Alpha\x00Tenant"},
    {"backup_set_id": 1, "confirmation": "x" * 5000},
])
def test_hostile_bodies_are_4xx_problems_never_500(app, world, body):
    tenant, _, _, _, _ = world
    api = client(app, "manager")
    for send in (dry_run, execute):
        resp = send(api, tenant, {"confirmation": TENANT, **body} if send is execute and "confirmation" not in body
                    else body)
        assert 400 <= resp.status_code < 500 and resp.mimetype == "application/problem+json", (send, resp.status_code)
    assert nothing_executed(app)


def test_a_body_that_is_not_json_is_a_4xx_problem(app, world):
    tenant, _, _, _, _ = world
    api = client(app, "manager")
    resp = api.post(f"/admin/api/v1/tenants/{tenant.id}/restore/execute", data=b"\x00\xff",
                    headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500 and resp.mimetype == "application/problem+json"
