"""Browser: runbook preflight → confirm → live progress (htmx, no reload) → completed."""
import pytest

from tests.browser import chromium, live_server, screenshot, sign_in
from tests.support import rename_plugin

pytestmark = pytest.mark.browser


def test_runbook_flow_with_live_progress(make_app, factory, tmp_path):
    rename_plugin.ALWAYS_FAIL["on"] = False
    # Embedded mode: the in-process worker runs the jobs while the browser watches.
    app = make_app(plugins=[rename_plugin], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True,
                   TENANTPILOT_FANOUT_BATCH_SIZE=10)
    f = type(factory)(app)
    ws = f.workspace("Northwind")
    for i in range(40):
        f.tenant(ws, name=f"legacy Tenant {i:02d}")
    f.tenant(ws, name="Contoso Pilot")
    f.platform_user(email="ops@example.test", password="ops-password-1")
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "system", "ops@example.test", "ops-password-1")
        page.click("text=Runbooks")
        card = page.locator("[data-runbook='tests.rename']")
        assert card.locator("[data-state=enabled]").is_visible()
        screenshot(page, "runbooks-catalog")
        card.locator("text=Preflight").click()

        # Single tenant through the htmx search picker first.
        page.check("input[value=single_tenant]")
        page.fill("#tenant_query", "contoso")
        page.wait_for_selector("text=Contoso Pilot")
        page.check("input[name=tenant_id]")
        page.click("text=Run preflight")
        page.wait_for_selector("text=Scope:")
        assert "tenant Contoso Pilot" in page.inner_text("hgroup")
        assert "0 items across 0 tenants" in page.inner_text("h2")

        # Then all tenants: the confirmation restates scope and totals.
        page.click("text=run it again")
        page.check("input[value=all_tenants]")
        page.click("text=Run preflight")
        page.wait_for_selector("text=Legacy rename: 40 items across 40 tenants")
        page.click("button:has-text('Start Legacy rename')")  # empty form: errors next to fields
        assert page.locator("#reason_code-error").is_visible()
        assert "Type the confirmation word." in page.inner_text("body")
        page.select_option("#reason_code", "DATA_REPAIR")
        page.fill("#reason_text", "Legacy names break the report export")
        page.fill("#confirmation", "RENAME")
        screenshot(page, "runbooks-confirm")
        page.click("button:has-text('Start Legacy rename')")
        page.wait_for_selector("#run-progress")
        page.evaluate("window.__notReloaded = true")
        page.wait_for_selector("[data-outcome=succeeded]", timeout=60000)
        assert page.evaluate("window.__notReloaded") is True  # htmx swapped the fragment in place
        assert page.locator("progress").first.get_attribute("data-percent") == "100"
        assert page.locator("[data-count=updated]").inner_text() == "40"
        # The tenant table and the actions refreshed too (out-of-band swaps), still no reload.
        page.wait_for_selector("#run-tenants >> text=succeeded 41")
        assert page.locator("#run-tenants .badge-neutral:has-text('pending')").count() == 0
        assert page.locator("text=Cancel run").count() == 0
        screenshot(page, "runbooks-run-completed")
