"""The restore wizard end to end over HTTP with the simulated provider (SPEC 5)."""
import re

import pytest
from sqlalchemy import select

from restore_helpers import (backup_payloads, capture, confirm_data, connect, drift, item_ids, restore_run_id,
                             signed_in, sim_calls, sim_state)
from tenantpilot.testing import post_form
from tenantpilot_restore import plugin
from tenantpilot_restore.models import BackupSet, RestoreRun, RestoreRunItem
from tenantpilot_simulated import plugin as simulated
from tests.helpers import audit_rows, count, queued_jobs
from tenantpilot.sdk import OperationRun, db


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated])


@pytest.fixture
def world(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Contoso HQ")
    connect(app, tenant)
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    return ws, tenant, manager


def results(app, rr_id):
    with app.app_context():
        return {i.name: (i.preview_action, i.result, i.reason_code) for i in db.session.scalars(
            select(RestoreRunItem).where(RestoreRunItem.restore_run_id == rr_id))}


def test_capture_snapshots_the_provider_state_into_a_backup_set(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    state = sim_state(app, tenant)
    assert backup.item_count == len(state) == 7
    assert backup_payloads(app, backup.id) == state
    page = client.get(f"/admin/t/{tenant.id}/backups").get_data(as_text=True)
    assert backup.name in page and "Capture backup" in page
    detail = client.get(f"/admin/t/{tenant.id}/backups/{backup.id}").get_data(as_text=True)
    assert "Windows 11 security baseline" in detail and "Block legacy authentication" in detail
    with app.app_context():
        run = db.session.get(OperationRun, backup.operation_run_id)
        assert (run.type, run.status, run.outcome, run.summary_counts["items"]) == (
            "restore.backup_capture", "completed", "succeeded", 7)


def test_wizard_end_to_end_dry_run_changes_nothing_and_execute_restores_the_backup(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    assert drift(app, tenant, 3) == 3
    drifted = sim_state(app, tenant)
    assert drifted != backup_payloads(app, backup.id)

    # 1. backup set → 2. scope → 3. safety checks → 4. preview → 5. confirm
    step1 = client.get(f"/admin/t/{tenant.id}/restore-runs/new")
    assert step1.status_code == 200 and backup.name in step1.get_data(as_text=True)
    step2 = client.get(f"/admin/t/{tenant.id}/restore-runs/new/scope?backup_set_id={backup.id}")
    assert step2.status_code == 200 and "All items (7)" in step2.get_data(as_text=True)
    step3 = post_form(client, f"/admin/t/{tenant.id}/restore-runs/new/checks",
                      {"backup_set_id": backup.id, "scope": "all"}, page="/admin/")
    html = step3.get_data(as_text=True)
    assert step3.status_code == 200 and 'data-check-status="fail"' not in html
    assert 'data-check="provider_connection" data-check-status="ok"' in html
    step4 = post_form(client, f"/admin/t/{tenant.id}/restore-runs/new/preview",
                      {"backup_set_id": backup.id, "scope": "all"}, page="/admin/")
    html = step4.get_data(as_text=True)
    assert step4.status_code == 200
    assert "3 of 7 items will change; 4 already match the backup." in html
    assert html.count('data-action="update"') == 3
    assert "Edited outside TenantPilot" in html  # the diff shows the current value

    assert ">Execute restore</button>" in html and ">Preview only — apply nothing</button>" not in html
    # A dry run with a mistyped name comes back ticked, its button saying what it does.
    typo = client.post(f"/admin/t/{tenant.id}/restore-runs",
                       data=confirm_data(client, backup.id, dry_run=True, tenant_name="Contoso"))
    assert typo.status_code == 400
    assert ">Preview only — apply nothing</button>" in typo.get_data(as_text=True)

    # Dry run: the preview is recorded, nothing applied, no operation run.
    dry = client.post(f"/admin/t/{tenant.id}/restore-runs",
                      data=confirm_data(client, backup.id, dry_run=True, tenant_name="Contoso HQ"))
    assert dry.status_code == 302
    dry_id = restore_run_id(dry)
    assert sim_state(app, tenant) == drifted
    assert count(app, OperationRun, OperationRun.type == "restore.execute") == 0
    assert sorted(a for a, _, _ in results(app, dry_id).values()) == ["unchanged"] * 4 + ["update"] * 3
    assert [e.meta["would_change"] for e in audit_rows(app, "restore.dry_run_recorded")] == [3]
    detail = client.get(f"/admin/t/{tenant.id}/restore-runs/{dry_id}").get_data(as_text=True)
    assert "Dry run" in detail and "nothing was applied" in detail

    # Execute restore: RestoreRun + OperationRun + one RQ job; the job applies each item.
    executed = client.post(f"/admin/t/{tenant.id}/restore-runs",
                           data=confirm_data(client, backup.id, tenant_name="Contoso HQ"))
    assert executed.status_code == 302
    rr_id = restore_run_id(executed)
    assert queued_jobs(app) == 1
    drain()
    assert sim_state(app, tenant) == backup_payloads(app, backup.id)
    res = results(app, rr_id)
    assert sorted(r for _, r, _ in res.values()) == ["applied"] * 3 + ["unchanged"] * 4
    with app.app_context():
        rr = db.session.get(RestoreRun, rr_id)
        run = rr.operation_run
        assert (rr.kind, run.type, run.status, run.outcome) == ("execute", "restore.execute", "completed", "succeeded")
        assert {k: run.summary_counts[k] for k in ("items", "applied", "unchanged", "items_failed")} == {
            "items": 7, "applied": 3, "unchanged": 4, "items_failed": 0}
        run_id = run.id
    started = audit_rows(app, "restore.execution_started")
    assert [(e.meta["restore_run_id"], e.meta["selected_item_count"], e.tenant_id) for e in started] == [
        (rr_id, 7, tenant.id)]
    detail = client.get(f"/admin/t/{tenant.id}/restore-runs/{rr_id}").get_data(as_text=True)
    assert "Succeeded" in detail and f"operation run #{run_id}" in detail and detail.count('data-result="applied"') == 3
    # How long its operation run waited and ran, as on every run page (issue 13, Times).
    assert re.search(r'data-duration="queued">Queued for \d+ sec</span> · <span data-duration="ran">Ran for \d+', detail)
    run_page = client.get(f"/admin/t/{tenant.id}/runs/{run_id}")
    assert run_page.status_code == 200 and "Execute restore" in run_page.get_data(as_text=True)
    listing = client.get(f"/admin/t/{tenant.id}/restore-runs").get_data(as_text=True)
    assert f'data-restore-run="{rr_id}"' in listing and f'data-restore-run="{dry_id}"' in listing


def test_selected_items_restore_only_those(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    drift(app, tenant)  # every policy edited
    ids = item_ids(app, backup.id)[:2]
    r = client.post(f"/admin/t/{tenant.id}/restore-runs",
                    data=confirm_data(client, backup.id, scope="selected", items=ids, tenant_name="Contoso HQ"))
    assert r.status_code == 302
    drain()
    state, wanted = sim_state(app, tenant), backup_payloads(app, backup.id)
    assert sum(state[k] == wanted[k] for k in wanted) == 2
    assert sorted(r for _, r, _ in results(app, restore_run_id(r)).values()) == ["applied", "applied"]


def test_an_item_the_provider_rejects_fails_alone_and_the_run_is_partial(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    drift(app, tenant)
    with app.app_context():
        from tenantpilot_restore.models import BackupItem

        bad = db.session.scalars(select(BackupItem).where(BackupItem.backup_set_id == backup.id)
                                 .order_by(BackupItem.id)).first()
        bad.payload = {}  # the simulated provider refuses an empty payload
        bad_name = bad.name
        db.session.commit()
    r = client.post(f"/admin/t/{tenant.id}/restore-runs", data=confirm_data(client, backup.id, tenant_name="Contoso HQ"))
    drain()
    res = results(app, restore_run_id(r))
    assert res.pop(bad_name)[1:] == ("failed", "invalid_payload")
    assert {r for _, r, _ in res.values()} == {"applied"} and len(res) == 6
    with app.app_context():
        run = db.session.get(RestoreRun, restore_run_id(r)).operation_run
        assert (run.outcome, run.summary_counts["items_failed"], run.summary_counts["applied"]) == (
            "partially_succeeded", 1, 6)
    detail = client.get(f"/admin/t/{tenant.id}/restore-runs/{restore_run_id(r)}").get_data(as_text=True)
    assert "Partially succeeded" in detail and "invalid_payload" in detail


def test_a_finished_restore_can_run_again_and_a_double_submit_is_one_run(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    drift(app, tenant, 1)
    data = confirm_data(client, backup.id, tenant_name="Contoso HQ")
    first = client.post(f"/admin/t/{tenant.id}/restore-runs", data=data)
    again = client.post(f"/admin/t/{tenant.id}/restore-runs", data=data)  # before the worker ran
    assert restore_run_id(first) == restore_run_id(again)
    assert count(app, RestoreRun) == 1 and queued_jobs(app) == 1
    drain()
    drift(app, tenant, 2)
    rerun = post_form(client, f"/admin/t/{tenant.id}/restore-runs/{restore_run_id(first)}/rerun",
                      {"acknowledge": "y", "tenant_name": "Contoso HQ"}, page="/admin/")
    assert rerun.status_code == 302
    new_id = restore_run_id(rerun)
    drain()
    assert sim_state(app, tenant) == backup_payloads(app, backup.id)
    with app.app_context():
        new = db.session.get(RestoreRun, new_id)
        assert new.rerun_of_id == restore_run_id(first) and new.operation_run.outcome == "succeeded"
    assert sorted(r for _, r, _ in results(app, new_id).values()).count("applied") == 2


def test_the_provider_is_not_called_by_pages_that_only_show_restores(app, world, drain):
    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    before = len(sim_calls(app, tenant))
    for url in (f"/admin/t/{tenant.id}/restore-runs", f"/admin/t/{tenant.id}/backups",
                f"/admin/t/{tenant.id}/backups/{backup.id}", f"/admin/t/{tenant.id}/restore-runs/new"):
        assert client.get(url).status_code == 200
    assert len(sim_calls(app, tenant)) == before


def test_a_re_executed_job_applies_only_items_not_yet_settled_and_capture_makes_one_set(app, world, drain):
    from tenantpilot.api import TenantJob
    from tenantpilot_restore import service

    _, tenant, manager = world
    client = signed_in(app, "admin", manager.email)
    backup = capture(app, client, tenant, drain)
    drift(app, tenant)
    r = client.post(f"/admin/t/{tenant.id}/restore-runs", data=confirm_data(client, backup.id, tenant_name="Contoso HQ"))
    rr_id = restore_run_id(r)
    with app.app_context():  # as if a first job settled three items, then its worker died
        first = db.session.scalars(select(RestoreRunItem).where(RestoreRunItem.restore_run_id == rr_id)
                                   .order_by(RestoreRunItem.id).limit(3)).all()
        for item in first:
            item.result = "applied"
        done = {i.backup_item_id for i in first}
        db.session.commit()
    before = len(sim_calls(app, tenant))
    drain()
    applies = [c for c in sim_calls(app, tenant)[before:] if c[0] == "apply_policy"]
    assert len(applies) == 4
    with app.app_context():
        from tenantpilot_restore.models import BackupItem

        skipped = {db.session.get(BackupItem, i).external_id for i in done}
        assert not skipped & {policy_id for _, _, policy_id in applies}
        run = db.session.get(RestoreRun, rr_id).operation_run
        assert (run.summary_counts["applied"], run.summary_counts["items"]) == (7, 7)
        # The capture executor run twice for one run still makes one backup set.
        job = TenantJob(run_id=backup.operation_run_id, tenant_id=tenant.id, workspace_id=tenant.workspace_id,
                        operation_type="restore.backup_capture", context={})
        assert service.capture_tenant(job) == {"items": 7}
        assert count(app, BackupSet, BackupSet.tenant_id == tenant.id) == 1
