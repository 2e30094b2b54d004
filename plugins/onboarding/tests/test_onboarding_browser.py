"""Browser: a tenant manager onboards a tenant with the simulated provider from the tenant
list's "Onboard a tenant" link — identify (after a mistyped GUID), connect, verify access
(the embedded worker runs the verification while the page follows it), review, activate —
then a platform operator sees the four tenant-linked checkpoints in the "Product
telemetry" widget of /system."""
import pytest

from onboarding_helpers import EVENT, GUID, events
from tenantpilot_onboarding import plugin
from tenantpilot_simulated import plugin as simulated
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import count
from tenantpilot.sdk import Tenant

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app):
    # Embedded mode: the in-process worker runs the verification while the browser watches.
    return make_app(plugins=[plugin, simulated], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Fabrikam MSP")
    factory.tenant(ws, name="Existing Tenant")
    factory.user(email="manager@example.test", password="manager-pass-123", memberships=[(ws, "manager")])
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    return ws


def test_onboard_a_tenant_to_activated_and_see_it_in_product_telemetry(app, world, tmp_path):
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, "admin", "manager@example.test", "manager-pass-123")
        page.wait_for_selector("text=Your role")
        page.click("[data-link='onboarding.new_tenant']")
        page.wait_for_selector("h2:has-text('Onboarding')")
        assert "No onboarding drafts in this workspace yet." in page.inner_text("[data-table=drafts]")
        page.click("[data-action=new-draft]")

        # 1. Identify, after a mistyped GUID: the error sits next to the field, nothing saved.
        page.fill("#display_name", "Contoso Ltd")
        page.fill("#external_id", "11111111-2222-3333-4444")
        page.click("button[data-submit=identify]")
        error = page.locator("#external_id-error")
        error.wait_for()
        assert error.inner_text().startswith("Enter the Entra tenant ID as a GUID")
        assert page.get_attribute("#external_id", "aria-invalid") == "true"
        assert page.input_value("#display_name") == "Contoso Ltd"  # kept across the re-render
        screenshot(page, "onboarding-identify-error")
        page.fill("#external_id", GUID)
        page.click("button[data-submit=identify]")

        # 2. Connect the simulated provider: the tenant is created here.
        page.wait_for_selector("[data-step=connect_provider]")
        assert page.locator("[data-checkpoint=identify][data-checkpoint-status=done]").is_visible()
        assert page.locator("[data-checkpoint=connect_provider][aria-current=step]").is_visible()
        assert "no tenant yet" in page.inner_text("hgroup")
        screenshot(page, "onboarding-connect")
        page.click("button[data-submit=connect]")

        # 3. Verify access: an operation run; the panel follows it, then the review step opens.
        page.wait_for_selector("[data-step=verify_access]")
        assert "Tenant created and connected to Simulated tenant" in page.inner_text("main")
        assert page.locator("[data-link=tenant]").inner_text() == "Contoso Ltd"
        page.click("button[data-submit=verify]")
        page.wait_for_selector("text=Verify tenant access started.")
        assert page.locator("#verify-live [data-link=operation-run]").is_visible()
        screenshot(page, "onboarding-verify")
        page.wait_for_selector("[data-step=ready_for_activation]", timeout=30000)

        # 4. Review: the verification result, then "Mark ready for activation".
        assert page.locator("[data-verification=ok]").is_visible()
        assert "5 of 5 required permissions granted" in page.inner_text("[data-verification]")
        assert page.locator("[data-summary] [data-link=operation-run]").is_visible()
        screenshot(page, "onboarding-review")
        page.click("button[data-submit=ready]")

        # 5. Activate, after a mistyped name.
        page.wait_for_selector("[data-step=activated]")
        page.fill("#tenant_name", "Contoso")
        page.click("button[data-submit=activate]")
        page.locator("#tenant_name-error").wait_for()
        assert page.inner_text("#tenant_name-error") == "Type the tenant name exactly as shown: Contoso Ltd"
        screenshot(page, "onboarding-activate-error")
        page.fill("#tenant_name", "Contoso Ltd")
        page.click("button[data-submit=activate]")
        page.wait_for_selector("[data-step=done]")
        assert page.locator("[data-checkpoint-status=done]").count() == 5
        screenshot(page, "onboarding-activated")

        page.click("text=Back to onboarding")
        row = page.locator("[data-table=drafts] tr[data-draft]")
        assert row.count() == 1
        assert row.locator("[data-state]").inner_text() == "Activated"
        assert row.locator("[data-progress]").inner_text() == "5 of 5"
        screenshot(page, "onboarding-list")
        page.click("a:has-text('Fabrikam MSP')")
        page.wait_for_selector("tbody tr a:has-text('Contoso Ltd')")
        assert page.locator("[data-link='onboarding.new_tenant']").is_visible()
        screenshot(page, "onboarding-tenant-list")

        # /system: the platform operator sees the four tenant-linked checkpoints.
        ops = browser.new_page(viewport={"width": 1280, "height": 900})
        ops.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(ops, base, "system", "ops@example.test", "ops-password-1")
        ops.wait_for_selector("[data-widget='telemetry.product']")
        widget = ops.locator("[data-widget='telemetry.product']")
        assert "Last 24 hours" in ops.inner_text("main")
        stat = widget.locator(f"[data-telemetry='{EVENT}']")
        assert "Onboarding checkpoints" in stat.inner_text()
        assert stat.locator("[data-count]").inner_text() == "4"
        assert "Contoso" not in widget.inner_text()  # aggregates only
        widget.scroll_into_view_if_needed()
        screenshot(ops, "onboarding-system-telemetry")
        assert errors == []
    assert count(app, Tenant) == 2
    assert [e.meta["checkpoint_key"] for e in events(app)] == [
        "connect_provider", "verify_access", "ready_for_activation", "activated"]
