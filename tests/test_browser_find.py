"""Browser: finding things by name. The preflight's tenant picker searches what is typed
among 500 tenants; the runs list is filtered by a tenant name picked from its typeahead;
the header's search finds a run by number."""
import pytest

from tenantpilot import seam
from tenantpilot.runs import Scope
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import platform_actor

pytestmark = pytest.mark.browser
CANARY = "ops.pipeline_canary"


def _console_errors(page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_the_preflight_picker_finds_one_tenant_among_500(app, factory, tmp_path):
    ws = factory.workspace("Bulk MSP")
    factory.tenants(ws, 499)
    target = factory.tenant(ws, "Zephyr Logistics")
    factory.platform_user(email="ops@example.test")
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = _console_errors(page)
        sign_in(page, base, "system", "ops@example.test", "platform-pass-123")
        page.goto(f"{base}/system/ops/runbooks/{CANARY}/preflight")
        page.check("input[name=kind][value=single_tenant]")
        page.fill("#tenant_query", "bulk tenant 4")  # 110 match (4, 40–49, 400–498): the first 20 and a hint
        page.wait_for_selector("[data-more-tenants]")
        assert "Showing 20 of 110 matching tenants" in page.inner_text("#tenant-options")
        page.fill("#tenant_query", "zeph")
        page.wait_for_selector("#tenant-options label:has-text('Zephyr Logistics')")
        assert page.locator("#tenant-options input[name=tenant_id]").count() == 1
        page.check(f"#tenant-options input[value='{target.id}']")
        screenshot(page, "find-preflight-picker")
        page.click("button:has-text('Run preflight')")
        page.wait_for_url("**/confirm?**")
        assert "Zephyr Logistics" in page.inner_text("main")
        assert errors == []


def test_the_runs_list_filtered_by_a_tenant_name_from_the_typeahead(app, factory, tmp_path):
    ws = factory.workspace("Northwind MSP")
    wanted, other = factory.tenant(ws, "Contoso Retail"), factory.tenant(ws, "Fabrikam")
    ops = factory.platform_user(email="ops@example.test")
    runs = {}
    with app.app_context():
        for t in (wanted, other):
            runs[t.name] = seam.start(CANARY, scope=Scope("single_tenant", tenant_id=t.id),
                                      actor=platform_actor(app, ops), source="system_ui").run.id
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = _console_errors(page)
        sign_in(page, base, "system", "ops@example.test", "platform-pass-123")
        page.goto(f"{base}/system/ops/runs")
        assert page.locator("tr[data-run]").count() == 2
        page.locator("#filter-tenant_name").press_sequentially("cont", delay=30)
        page.wait_for_selector("#tenant_name-suggestions option[value='Contoso Retail']", state="attached")
        page.fill("#filter-tenant_name", "Contoso Retail")  # what picking the suggestion puts in the box
        page.click("button:has-text('Filter')")
        page.wait_for_url("**tenant_name=Contoso+Retail**")
        assert page.locator("tr[data-run]").count() == 1
        assert page.locator(f"tr[data-run='{runs['Contoso Retail']}']").count() == 1
        screenshot(page, "find-runs-by-tenant-name")
        # The header's search finds the other run by its number.
        page.fill(".header-search input[name=q]", f"#{runs['Fabrikam']}")
        page.press(".header-search input[name=q]", "Enter")
        page.wait_for_selector("[data-hit=run]")
        page.click("[data-hit=run] a")
        page.wait_for_url(f"**/system/ops/runs/{runs['Fabrikam']}")
        assert errors == []
