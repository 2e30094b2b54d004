"""Browser: an operator opens support diagnostics from the tenant overview and sees the
bundle; then from a failed run's page, and the bundle names that run."""
import pytest

from support_helpers import LEAKY_MESSAGE, add_findings, add_run, audit_dicts, connect, event_dicts, rename_user
from tenantpilot_findings import plugin as findings
from tenantpilot_simulated import plugin as simulated
from tenantpilot_support import plugin
from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, findings, simulated])


def test_open_support_diagnostics_from_the_overview_and_a_run(app, factory, tmp_path):
    ws = factory.workspace("Northwind Partners")
    tenant = factory.tenant(ws, name="Contoso Hospitality")
    operator = factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    rename_user(app, operator, "Dana Whitfield")  # the person LEAKY_MESSAGE names
    connect(app, tenant)
    add_run(app, tenant, outcome="succeeded")
    run_id = add_run(app, tenant, initiator=operator, failures=[("auth_failed", LEAKY_MESSAGE),
                                                               ("throttled", "The provider kept answering 429.")])
    add_findings(app, tenant, ("critical", "new", "A"), ("high", "new", "B"), ("high", "triaged", "C"),
                 ("medium", "in_progress", "D"), ("low", "resolved", "E"))

    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "admin", "operator@example.test", "user-pass-123")
        page.click("tbody tr a:has-text('Contoso Hospitality')")
        page.wait_for_selector("nav.tenant-tabs")
        screenshot(page, "support-tenant-home")
        assert audit_dicts(app) == [] and event_dicts(app) == []  # the overview records nothing

        page.click("[data-tenant-action='support.diagnostics.open'] button")
        bundle = page.locator("[data-support-bundle]")
        bundle.wait_for()
        assert "from the tenant dashboard" in bundle.inner_text()
        assert page.inner_text("[data-section=provider_connection] [data-health]") == "healthy"
        assert page.locator("[data-section=runs] [data-run]").count() == 2
        assert page.locator(f"[data-run='{run_id}'] [data-failure]").count() == 2
        assert "Token of [email] expired; ask [user] to re-consent" in page.inner_text(f"[data-run='{run_id}']")
        assert [page.inner_text(f"[data-severity={s}]") for s in ("critical", "high", "medium", "low")] == \
            ["1", "2", "1", "0"]
        assert "@" not in page.content()
        assert not page.locator("[data-bundle-json]").is_visible()  # folded until asked for
        screenshot(page, "support-bundle")

        page.click(f"[data-run='{run_id}'] a")  # to the run's page, and diagnostics from there
        page.wait_for_selector("#tenant-run")
        screenshot(page, "support-run-page")
        page.click("[data-tenant-action='support.diagnostics.open'] button")
        page.wait_for_selector(f"[data-support-bundle]:has-text('from operation run #{run_id}')")
        page.click("summary:has-text('Bundle as JSON')")
        assert '"last_error_code"' in page.inner_text("[data-bundle-json]")
        screenshot(page, "support-bundle-from-run")
    assert [r["meta"]["source_surface"] for r in audit_dicts(app)] == ["tenant_dashboard", "operation_run_viewer"]
    assert [e["meta"].get("operation_type") for e in event_dicts(app)] == [None, "findings.lifecycle.backfill"]
