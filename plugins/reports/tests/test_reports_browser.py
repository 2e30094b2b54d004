"""Browser: an operator opens the Reports tab, generates both reports (the embedded worker
runs the jobs while the page refreshes itself through htmx, no reload), then opens the
roles report with its bar chart and the permission posture report with the missing
permissions."""
import re

import pytest

from reports_helpers import ALL_REQUIRED, connect, set_permissions, set_roles
from tenantpilot_findings import plugin as findings
from tenantpilot_reports import plugin
from tenantpilot_simulated import plugin as simulated
from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser
ROLES = [("Global Administrator", "p-1", "user"), ("Global Administrator", "p-2", "user"),
         ("Intune Administrator", "p-3", "group"), ("Security Reader", "p-4", "user"),
         ("Security Reader", "p-5", "user"), ("Security Reader", "p-6", "user"),
         ("Security Reader", "p-7", "servicePrincipal"), ("Conditional Access Administrator", "p-8", "user")]


@pytest.fixture
def app(make_app):
    # Embedded mode: the in-process worker runs the report jobs while the browser watches.
    return make_app(plugins=[plugin, simulated, findings], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)


@pytest.fixture
def tenant(app, factory):
    ws = factory.workspace("Workspace A")
    tenant = factory.tenant(ws, name="Alpha Tenant")
    connect(app, tenant)
    set_permissions(app, tenant, [p for p in ALL_REQUIRED if p != "RoleManagement.Read.Directory"])
    set_roles(app, tenant, ROLES)
    factory.user(email="operator@example.test", password="operator-pass-123", memberships=[(ws, "operator")])
    return tenant


def generate(page, key):
    page.click(f"[data-action=generate-{key}] button")
    flash = page.locator("p.flash:has-text('started (run #')")
    flash.wait_for()
    run_id = re.search(r"run #(\d+)", flash.inner_text()).group(1)
    page.evaluate("window.__notReloaded = true")
    # The list polls itself while the run is active and shows the new report when it is done.
    page.wait_for_selector(f"[data-last-run={key}][data-run-id='{run_id}'] [data-run-result=stored]", timeout=30000)
    assert page.evaluate("window.__notReloaded") is True


def test_generate_both_reports_and_read_them(app, tenant, tmp_path):
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "admin", "operator@example.test", "operator-pass-123")
        page.click("tbody tr a:has-text('Alpha Tenant')")
        page.click("[data-tenant-page='reports.list']")
        page.wait_for_selector("text=No reports yet.")

        generate(page, "permission_posture")
        generate(page, "entra_admin_roles")
        assert page.locator("[data-report]").count() == 2
        posture_row = page.inner_text("[data-report-row-type=permission_posture]")
        assert "4 of 5 required permissions granted · 1 missing" in posture_row
        assert "8 role assignments across 4 roles" in page.inner_text("[data-report-row-type=entra_admin_roles]")
        screenshot(page, "reports-list")

        page.click("[data-report-row-type=entra_admin_roles] a:has-text('Entra admin roles')")
        chart = page.locator("[data-chart=roles] li")
        chart.first.wait_for()
        assert chart.count() == 4
        assert chart.first.get_attribute("data-role") == "Security Reader"
        widths = chart.locator(".rp-bar > span").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
        assert widths[0] > widths[1] > widths[2] > 0 and widths[2] == widths[3]  # 4, 2, 1, 1
        assert page.locator("[data-role='Global Administrator'] .badge").inner_text() == "privileged"
        assert page.inner_text("[data-count=privileged]") == "2"
        screenshot(page, "reports-roles-detail")

        page.click("nav[aria-label=breadcrumb] a:has-text('Reports')")
        page.click("[data-report-row-type=permission_posture] a:has-text('Permission posture')")
        page.wait_for_selector("[data-table=permissions]")
        missing = page.locator("[data-permission='RoleManagement.Read.Directory'] .badge")
        assert missing.get_attribute("data-permission-status") == "missing"
        assert page.locator("[data-permission-status=granted]").count() == 4
        screenshot(page, "reports-posture-detail")

        # Someone adds a Global Administrator and removes the Intune one: the next roles
        # report shows the change per role against the previous one.
        set_roles(app, tenant, [r for r in ROLES + [("Global Administrator", "p-9", "user")] if r[2] != "group"])
        page.click("[data-tenant-page='reports.list']")
        generate(page, "entra_admin_roles")
        page.click("[data-report-row-type=entra_admin_roles] >> nth=0 >> a:has-text('Entra admin roles')")
        page.wait_for_selector("[data-chart=roles]")
        assert page.inner_text("[data-role='Global Administrator'] .rp-delta") == "+1"
        assert page.inner_text("[data-role='Intune Administrator'] .rp-delta") == "−1"
        assert page.inner_text("[data-role='Security Reader'] .rp-delta") == "±0"
        screenshot(page, "reports-roles-compare")
