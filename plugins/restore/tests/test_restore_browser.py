"""Browser: a tenant manager captures a backup, drifts the tenant, and restores it through
the wizard (backup set → scope → safety checks → preview → confirm): first a dry run,
then a real restore whose detail page follows the run live (htmx, no reload) to
"Succeeded". A wrong tenant name gets its error next to the field. In a workspace where
`restore.execute` is paused, Execute restore shows the pause and creates nothing."""
import time

import pytest
from sqlalchemy import select

from restore_helpers import PAUSE_REASON, connect, drift, pause
from tenantpilot_restore import plugin
from tenantpilot_restore.models import BackupSet, RestoreRun
from tenantpilot_simulated import plugin as simulated
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import count
from tenantpilot.sdk import OperationRun, db

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app):
    # Embedded mode: the in-process worker runs capture and restore jobs while the browser watches.
    return make_app(plugins=[plugin, simulated], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)


@pytest.fixture
def world(app, factory):
    ws_a, ws_b = factory.workspace("Workspace A"), factory.workspace("Workspace B")
    tenant_a, tenant_b = factory.tenant(ws_a, name="Alpha Tenant"), factory.tenant(ws_b, name="Bravo Tenant")
    for t in (tenant_a, tenant_b):
        connect(app, t)
    factory.user(email="manager@example.test", password="manager-pass-123", memberships=[(ws_a, "manager"),
                                                                                          (ws_b, "manager")])
    return ws_a, ws_b, tenant_a, tenant_b


def manager(page, base):
    sign_in(page, base, "admin", "manager@example.test", "manager-pass-123")
    page.wait_for_selector("text=Your role")


def open_tenant(page, name):
    page.click(f"tbody tr a:has-text('{name}')")
    page.wait_for_selector("nav.tenant-tabs")


def capture_backup(page, timeout=30):
    """Backups tab → Capture backup, then reload until the embedded worker made the set
    (the backups page does not poll)."""
    page.click("[data-tenant-page='restore.backups']")
    page.click("[data-action=capture-backup] button")
    page.wait_for_selector("text=Capture backup started")
    deadline = time.monotonic() + timeout
    while page.locator("[data-backup-set]").count() == 0:
        assert time.monotonic() < deadline, "the capture run made no backup set"
        time.sleep(0.3)
        page.reload()
    assert page.locator("[data-capture-status=completed]").is_visible()


def wizard_to_confirm(page, backup_id):
    """Restore runs tab → New restore → backup set → All items → safety checks → preview."""
    page.click("[data-tenant-page='restore.runs']")
    page.click("[data-action=new-restore] a:has-text('New restore')")
    page.check(f"input[name=backup_set_id][value='{backup_id}']")
    page.click("button:has-text('Continue')")
    page.check("input[name=scope][value=all]")
    page.click("button:has-text('Run safety checks')")
    page.wait_for_selector("[data-check]")
    statuses = dict(zip(page.locator("[data-check]").evaluate_all("rs => rs.map(r => r.dataset.check)"),
                        page.locator("[data-check]").evaluate_all("rs => rs.map(r => r.dataset.checkStatus)")))
    page.click("button:has-text('Preview changes')")
    page.wait_for_selector("form[data-form=restore-confirm]")
    return statuses


def confirm(page, tenant_name, *, dry_run=False):
    button = page.locator("button[data-submit=execute]")
    assert button.inner_text() == "Execute restore"
    if dry_run:
        page.check("input[name=dry_run]")
        assert button.inner_text() == "Preview only — apply nothing"  # says what it will do
    page.check("input[name=acknowledge]")
    page.fill("#tenant_name", tenant_name)
    page.click("button[data-submit=execute]")


def backup_id_of(app, tenant):
    with app.app_context():
        return db.session.scalars(select(BackupSet.id).where(BackupSet.tenant_id == tenant.id)).one()


def test_capture_preview_dry_run_and_restore_in_the_browser(app, world, tmp_path):
    _, _, tenant_a, _ = world
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        manager(page, base)
        open_tenant(page, "Alpha Tenant")

        # 1. Capture a backup; the embedded worker runs the job.
        capture_backup(page)
        backup_id = backup_id_of(app, tenant_a)
        assert "7" in page.inner_text(f"[data-backup-set='{backup_id}']")

        # 2. Someone edits the tenant outside TenantPilot; preview shows what a restore changes.
        assert drift(app, tenant_a, 2) == 2
        checks = wizard_to_confirm(page, backup_id)
        assert set(checks.values()) == {"ok"}, checks
        assert page.inner_text("[data-preview-summary]").startswith("2 of 7 items will change")
        updated = page.locator("details.preview-item[data-action=update]")
        assert updated.count() == 2
        assert updated.first.locator(".badge").inner_text() == "Will be updated"
        assert updated.first.locator("table.diff").is_visible()  # open, with the setting-level diff
        assert "description" in updated.first.locator("table.diff").inner_text()
        screenshot(page, "restore-preview")

        # A dry run records the preview and applies nothing.
        confirm(page, "Alpha Tenant", dry_run=True)
        page.wait_for_selector("h3:has-text('Dry run #')")
        assert "nothing was applied" in page.inner_text("main")
        assert page.inner_text("[data-restore-status]") == "Dry run"
        assert count(app, OperationRun, OperationRun.type == "restore.execute") == 0

        # 3. Back through the wizard, for real this time — after a mistyped tenant name (5).
        wizard_to_confirm(page, backup_id)
        confirm(page, "Alpha")
        error = page.locator("#tenant_name-error")
        error.wait_for()
        assert error.inner_text() == "Type the tenant name exactly as shown: Alpha Tenant"
        assert page.get_attribute("#tenant_name", "aria-invalid") == "true"
        assert page.is_checked("input[name=acknowledge]")  # kept across the re-render
        assert count(app, RestoreRun, RestoreRun.kind == "execute") == 0
        screenshot(page, "restore-wrong-tenant-name")

        page.fill("#tenant_name", "Alpha Tenant")
        page.click("button[data-submit=execute]")
        page.wait_for_selector("#restore-live")
        assert "started (operation run #" in page.inner_text("main")
        assert page.locator("#restore-live progress").is_visible()
        page.evaluate("window.__notReloaded = true")
        page.wait_for_selector("[data-restore-status]:text-is('Succeeded')", timeout=30000)
        assert page.evaluate("window.__notReloaded") is True  # htmx swapped the fragment in place, if at all
        assert page.locator("[data-outcome=succeeded]").is_visible()
        assert page.inner_text("[data-progress-text]") == "100%"
        assert page.inner_text("[data-count=applied]") == "2"
        assert page.inner_text("[data-count=unchanged]") == "5"
        assert page.inner_text("[data-count=failed]") == "0"
        applied = page.locator("[data-result=applied]")
        assert applied.count() == 2
        applied.first.locator("summary").click()  # what the restore changed, beside its result
        assert "description" in applied.first.locator("table.diff").inner_text()
        screenshot(page, "restore-succeeded")

        page.click("[data-tenant-page='restore.runs']")
        kinds = page.locator("[data-restore-run]").all_inner_texts()
        assert len(kinds) == 2 and "Succeeded" in kinds[0] and "Dry run" in kinds[1]
    assert count(app, RestoreRun, RestoreRun.tenant_id == tenant_a.id, RestoreRun.kind == "execute") == 1


def test_paused_workspace_shows_the_pause_on_execute_and_creates_nothing(app, world, tmp_path):
    _, ws_b, _, tenant_b = world
    pause(app, "workspace", ws_b.id)
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        manager(page, base)
        page.select_option("#workspace_id", label="Workspace B (manager)")  # submits itself
        page.wait_for_selector("h2:has-text('Workspace B')")
        open_tenant(page, "Bravo Tenant")
        capture_backup(page)  # capturing is not gated by restore.execute
        backup_id = backup_id_of(app, tenant_b)
        drift(app, tenant_b, 2)

        page.click("[data-tenant-page='restore.runs']")
        new_restore = page.locator("[data-action=new-restore]")
        assert "Paused" in new_restore.inner_text() and PAUSE_REASON in new_restore.inner_text()
        checks = wizard_to_confirm(page, backup_id)
        assert checks.pop("restore_control") == "warn" and set(checks.values()) == {"ok"}
        confirm(page, "Bravo Tenant")
        page.wait_for_selector("[data-start-result=blocked]")
        blocked = page.locator("[data-start-result=blocked]")
        assert "Restore execution paused" in blocked.locator("header").inner_text()
        assert blocked.locator("p").inner_text() == f"Restore execution is currently paused. {PAUSE_REASON}"
        assert page.locator("button[data-submit=execute]").is_visible()  # the button stays, with the pause inline
        assert PAUSE_REASON in page.inner_text("form[data-form=restore-confirm] .actions")
        screenshot(page, "restore-paused")
    assert count(app, RestoreRun, RestoreRun.tenant_id == tenant_b.id) == 0
    assert count(app, OperationRun, OperationRun.type == "restore.execute") == 0
