"""Browser: a manager opens a tenant's Findings tab, filters, starts the lifecycle backfill
from the header action; with the control paused, the button shows the pause inline."""
import pytest

from tenantpilot.extensions import db
from tenantpilot.models import OperationalControlActivation, OperationRun
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import count

pytestmark = pytest.mark.browser


def tenant_user(page, base, email, password):
    sign_in(page, base, "admin", email, password)
    page.wait_for_selector("text=Your role")


def test_findings_tab_filters_and_backfill_action(app, tmp_path):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0  # demo findings for every tenant
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        tenant_user(page, base, "manager@demo.test", "demo-manager-pass")
        page.locator("tbody tr a").first.click()
        page.click("[data-tenant-page='findings.list']")
        page.wait_for_selector("[data-finding]")
        assert page.locator("[data-action=findings-backfill] button").is_visible()
        page.select_option("select[name=severity]", "critical")
        page.locator("form[role=search] button").click()
        page.wait_for_load_state()
        severities = page.locator("[data-finding] .badge").all_inner_texts()
        assert "critical" in severities and "low" not in severities
        screenshot(page, "findings-list")
        page.click("[data-action=findings-backfill] button")
        page.wait_for_selector("text=Findings lifecycle backfill started")
        screenshot(page, "findings-backfill-started")
    assert count(app, OperationRun, OperationRun.type == "findings.lifecycle.backfill") == 1


def test_paused_backfill_shows_the_reason_inline_and_starts_nothing(app, tmp_path):
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="findings.lifecycle.backfill", scope_type="global",
                                                    reason_text="SLA policy migration in progress"))
        db.session.commit()
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        tenant_user(page, base, "owner@demo.test", "demo-owner-pass")
        page.locator("tbody tr a").first.click()
        page.click("[data-tenant-page='findings.list']")
        page.wait_for_selector("[data-finding]")
        assert "SLA policy migration in progress" in page.inner_text("[data-action=findings-backfill]")
        page.click("[data-action=findings-backfill] button")  # still visible and clickable
        page.wait_for_selector("text=Findings lifecycle backfill paused")
        assert "Findings lifecycle backfill is currently paused. SLA policy migration in progress" in page.inner_text("body")
        screenshot(page, "findings-backfill-paused")
    assert count(app, OperationRun) == 0
