"""Execute restore meets the restore.execute control before anything exists (SPEC 4/5),
and who may do what: 404 for non-members, 403 without tenant.manage + restore.execute,
the paused message for an entitled member."""
import pytest
from sqlalchemy import select

from restore_helpers import (PAUSE_REASON, backup_payloads, capture, confirm_data, connect, drift, item_ids, pause,
                             restore_run_id, signed_in, sim_calls, sim_state)
from tenantpilot.testing import post_form
from tenantpilot_restore import plugin, service
from tenantpilot_restore.models import BackupSet, RestoreRun, RestoreRunItem
from tenantpilot_simulated import plugin as simulated
from tests.helpers import audit_rows, count, queued_jobs
from tenantpilot.sdk import OperationRun, Tenant, User, db

TITLE = "Restore execution paused"
BODY = f"Restore execution is currently paused. {PAUSE_REASON}"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated])


@pytest.fixture
def world(app, factory, drain):
    ws_a, ws_b = factory.workspace("Workspace A"), factory.workspace("Workspace B")
    tenant_a, tenant_b = factory.tenant(ws_a, name="Alpha Tenant"), factory.tenant(ws_b, name="Bravo Tenant")
    for t in (tenant_a, tenant_b):
        connect(app, t)
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws_a, role), (ws_b, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(factory.workspace(), "owner")])
    client = signed_in(app, "admin", "manager@example.test")
    backups = {t.id: capture(app, client, t, drain) for t in (tenant_a, tenant_b)}
    for t in (tenant_a, tenant_b):
        drift(app, t, 2)
    return ws_a, ws_b, tenant_a, tenant_b, users, backups


def execute(client, tenant, backup_id, **kw):
    kw.setdefault("tenant_name", tenant.name)
    return client.post(f"/admin/t/{tenant.id}/restore-runs", data=confirm_data(client, backup_id, **kw))


def test_workspace_pause_blocks_its_tenant_with_nothing_created_and_the_other_workspace_restores(app, world, drain):
    ws_a, _, tenant_a, tenant_b, _, backups = world
    pause(app, "workspace", ws_a.id)
    client = signed_in(app, "admin", "manager@example.test")
    calls_before, runs_before = len(sim_calls(app, tenant_a)), count(app, OperationRun)
    drifted_a = sim_state(app, tenant_a)

    blocked = execute(client, tenant_a, backups[tenant_a.id].id)
    html = blocked.get_data(as_text=True)
    assert blocked.status_code == 409
    assert TITLE in html and BODY in html
    assert "Execute restore" in html  # the button stays visible, with the pause inline
    assert count(app, RestoreRun) == 0 and count(app, RestoreRunItem) == 0
    assert count(app, OperationRun) == runs_before and queued_jobs(app) == 0
    assert len(sim_calls(app, tenant_a)) == calls_before  # no provider call at all
    assert sim_state(app, tenant_a) == drifted_a
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert (event.status, event.workspace_id, event.tenant_id) == ("blocked", ws_a.id, tenant_a.id)
    assert event.meta["control_key"] == "restore.execute" and event.meta["scope_type"] == "workspace"
    assert event.meta["backup_set_id"] == backups[tenant_a.id].id
    assert event.meta["selected_item_count"] == 7 and event.meta["reason"] == PAUSE_REASON

    allowed = execute(client, tenant_b, backups[tenant_b.id].id)
    assert allowed.status_code == 302
    drain()
    assert sim_state(app, tenant_b) == backup_payloads(app, backups[tenant_b.id].id)
    with app.app_context():
        assert db.session.get(RestoreRun, restore_run_id(allowed)).operation_run.outcome == "succeeded"


def test_a_pause_after_the_restore_was_accepted_does_not_change_it(app, world, drain):
    _, _, tenant_a, _, _, backups = world
    client = signed_in(app, "admin", "manager@example.test")
    accepted = execute(client, tenant_a, backups[tenant_a.id].id)
    assert accepted.status_code == 302
    pause(app)  # global, after acceptance
    drain()
    assert sim_state(app, tenant_a) == backup_payloads(app, backups[tenant_a.id].id)
    with app.app_context():
        assert db.session.get(RestoreRun, restore_run_id(accepted)).operation_run.outcome == "succeeded"


def test_paused_state_is_shown_inline_and_a_dry_run_is_still_allowed(app, world):
    _, _, tenant_a, _, _, backups = world
    pause(app)
    client = signed_in(app, "admin", "manager@example.test")
    listing = client.get(f"/admin/t/{tenant_a.id}/restore-runs").get_data(as_text=True)
    assert "New restore" in listing and PAUSE_REASON in listing and "Paused" in listing
    preview = post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/new/preview",
                        {"backup_set_id": backups[tenant_a.id].id, "scope": "all"}, page="/admin/")
    assert preview.status_code == 200 and PAUSE_REASON in preview.get_data(as_text=True)
    checks = post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/new/checks",
                       {"backup_set_id": backups[tenant_a.id].id, "scope": "all"}, page="/admin/")
    assert 'data-check="restore_control" data-check-status="warn"' in checks.get_data(as_text=True)
    dry = execute(client, tenant_a, backups[tenant_a.id].id, dry_run=True)
    assert dry.status_code == 302 and count(app, OperationRun, OperationRun.type == "restore.execute") == 0


def test_rerun_of_a_finished_restore_meets_the_same_gate(app, world, drain):
    ws_a, _, tenant_a, _, _, backups = world
    client = signed_in(app, "admin", "manager@example.test")
    first = execute(client, tenant_a, backups[tenant_a.id].id)
    drain()
    pause(app, "workspace", ws_a.id)
    runs_before, calls_before = count(app, OperationRun), len(sim_calls(app, tenant_a))
    r = post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/{restore_run_id(first)}/rerun",
                  {"acknowledge": "y", "tenant_name": tenant_a.name}, page="/admin/")
    assert r.status_code == 409 and BODY in r.get_data(as_text=True)
    assert count(app, RestoreRun) == 1 and count(app, OperationRun) == runs_before and queued_jobs(app) == 0
    assert len(sim_calls(app, tenant_a)) == calls_before
    assert len(audit_rows(app, "operational_control.execution_blocked")) == 1


@pytest.mark.parametrize("role", ["operator", "readonly"])
def test_members_without_restore_capabilities_get_403_everywhere_in_the_wizard(app, world, role):
    _, _, tenant_a, _, _, backups = world
    client = signed_in(app, "admin", f"{role}@example.test")
    b = backups[tenant_a.id].id
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs").status_code == 200  # the list is tenant.view
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs/new").status_code == 403
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs/new/scope?backup_set_id={b}").status_code == 403
    for step in ("new/checks", "new/preview"):
        assert post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/{step}",
                         {"backup_set_id": b, "scope": "all"}, page="/admin/").status_code == 403
    assert execute(client, tenant_a, b).status_code == 403
    assert count(app, RestoreRun) == 0 and count(app, OperationRun, OperationRun.type == "restore.execute") == 0


def test_operator_gets_403_even_while_paused_and_an_outsider_404(app, world):
    _, _, tenant_a, _, _, backups = world
    pause(app)
    assert execute(signed_in(app, "admin", "operator@example.test"), tenant_a, backups[tenant_a.id].id).status_code == 403
    outsider = signed_in(app, "admin", "outsider@example.test")
    for url in (f"/admin/t/{tenant_a.id}/restore-runs", f"/admin/t/{tenant_a.id}/backups",
                f"/admin/t/{tenant_a.id}/restore-runs/new", f"/admin/t/{tenant_a.id}/connection"):
        assert outsider.get(url).status_code == 404
    assert execute(outsider, tenant_a, backups[tenant_a.id].id).status_code == 404
    assert audit_rows(app, "operational_control.execution_blocked") == []
    # The page refuses before the seam is reached; the seam itself must refuse in the same
    # order (capability before control), or another caller of start_restore would tell an
    # operator "paused" and audit a blocked start they were never entitled to.
    results = {}
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_a.id)
        backup = db.session.get(BackupSet, backups[tenant_a.id].id)
        for role in ("operator", "manager"):
            user = db.session.scalar(select(User).where(User.email == f"{role}@example.test"))
            result, rr = service.start_restore(tenant, backup, list(backup.items), "all", user)
            results[role] = (result.status, result.http_status, rr)
    assert results == {"operator": ("forbidden", 403, None), "manager": ("blocked", 409, None)}
    [event] = audit_rows(app, "operational_control.execution_blocked")  # the manager's, not the operator's
    assert event.actor_id == world[4]["manager"].id
    assert count(app, RestoreRun) == 0 and count(app, OperationRun, OperationRun.type == "restore.execute") == 0


def test_bad_input_gets_a_clear_answer_and_creates_nothing(app, world):
    _, _, tenant_a, tenant_b, _, backups = world
    client = signed_in(app, "admin", "manager@example.test")
    a, b = backups[tenant_a.id].id, backups[tenant_b.id].id

    # Unknown backup set, and a backup set of another tenant: 404 at every step.
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs/new/scope?backup_set_id=999999").status_code == 404
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs/new/scope?backup_set_id={b}").status_code == 404
    assert client.get(f"/admin/t/{tenant_a.id}/backups/{b}").status_code == 404
    assert execute(client, tenant_a, 999999).status_code == 404
    assert execute(client, tenant_a, b).status_code == 404
    # Items of another tenant's backup inside this tenant's backup set: 404.
    assert execute(client, tenant_a, a, scope="selected", items=item_ids(app, b)[:2]).status_code == 404
    checks = post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/new/checks",
                       {"backup_set_id": a, "scope": "selected",
                               "item_ids": item_ids(app, b)[:1]}, page="/admin/")
    assert checks.status_code == 404

    # Field errors, next to their fields, with a 400.
    wrong_name = execute(client, tenant_a, a, tenant_name="Alpha")
    assert wrong_name.status_code == 400
    assert "Type the tenant name exactly as shown: Alpha Tenant" in wrong_name.get_data(as_text=True)
    no_ack = execute(client, tenant_a, a, acknowledge=False)
    assert no_ack.status_code == 400 and "Acknowledge the impact to continue." in no_ack.get_data(as_text=True)
    no_name = execute(client, tenant_a, a, tenant_name="")
    assert no_name.status_code == 400 and "Type the tenant name to confirm." in no_name.get_data(as_text=True)
    no_items = post_form(client, f"/admin/t/{tenant_a.id}/restore-runs/new/checks",
                         {"backup_set_id": a, "scope": "selected"}, page="/admin/")
    assert no_items.status_code == 400 and "Choose at least one item to restore." in no_items.get_data(as_text=True)
    no_csrf = client.post(f"/admin/t/{tenant_a.id}/restore-runs",
                          data={k: v for k, v in confirm_data(client, a, tenant_name=tenant_a.name).items()
                                if k != "csrf_token"})
    assert no_csrf.status_code == 400

    assert count(app, RestoreRun) == 0 and count(app, RestoreRunItem) == 0
    assert count(app, OperationRun, OperationRun.type == "restore.execute") == 0 and queued_jobs(app) == 0
    assert audit_rows(app, "restore.execution_started") == [] and audit_rows(app, "restore.dry_run_recorded") == []
    # A restore run of another tenant is not visible through this one.
    dry = execute(client, tenant_b, b, dry_run=True)
    assert client.get(f"/admin/t/{tenant_a.id}/restore-runs/{restore_run_id(dry)}").status_code == 404


def test_a_tenant_without_a_connection_fails_the_safety_check(app, world, factory):
    ws_a = world[0]
    lonely = factory.tenant(ws_a, name="Unconnected Tenant")
    with app.app_context():
        backup = BackupSet(tenant_id=lonely.id, name="Imported", item_count=0)
        db.session.add(backup)
        db.session.commit()
        backup_id = backup.id
    client = signed_in(app, "admin", "manager@example.test")
    r = post_form(client, f"/admin/t/{lonely.id}/restore-runs/new/checks",
                  {"backup_set_id": backup_id, "scope": "all"}, page="/admin/")
    html = r.get_data(as_text=True)
    assert 'data-check="provider_connection" data-check-status="fail"' in html
    assert "This tenant has no provider connection" in html and "disabled" in html
    preview = post_form(client, f"/admin/t/{lonely.id}/restore-runs/new/preview",
                        {"backup_set_id": backup_id, "scope": "all"}, page="/admin/")
    assert preview.status_code == 400


def test_a_double_submitted_execute_restore_creates_one_restore(app, world, drain):
    """The confirm step's idempotency token: the second submit (double click, refresh of
    the POST after the first finished) lands on the first restore and creates nothing."""
    _, _, tenant_a, _, _, backups = world
    client = signed_in(app, "admin", "manager@example.test")
    data = {**confirm_data(client, backups[tenant_a.id].id, tenant_name=tenant_a.name),
            "idempotency_token": "one-rendered-confirm-form"}
    first = client.post(f"/admin/t/{tenant_a.id}/restore-runs", data=data)
    assert first.status_code == 302
    drain()
    runs_before = count(app, OperationRun)
    again = client.post(f"/admin/t/{tenant_a.id}/restore-runs", data=data)
    assert again.status_code == 302 and again.headers["Location"] == first.headers["Location"]
    assert count(app, RestoreRun) == 1 and count(app, OperationRun) == runs_before
