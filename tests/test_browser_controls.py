"""Browser: pause a control globally (impact preview → confirm), see the runbook card show
"Paused", resume, see it "Enabled" — timed: an operator must manage it well under a minute."""
import time

import pytest

from tests.browser import chromium, live_server, screenshot, sign_in
from tests.support import rename_plugin

pytestmark = pytest.mark.browser


def test_pause_and_resume_globally_in_the_browser(make_app, factory, tmp_path):
    rename_plugin.ALWAYS_FAIL["on"] = False
    app = make_app(plugins=[rename_plugin])
    f = type(factory)(app)
    for name, n in (("Northwind", 3), ("Fabrikam", 2)):
        ws = f.workspace(name)
        for i in range(n):
            f.tenant(ws, name=f"{name} tenant {i}")
    f.platform_user(email="ops@example.test", password="ops-password-1")
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        sign_in(page, base, "system", "ops@example.test", "ops-password-1")
        page.wait_for_selector("text=Controls")
        started = time.monotonic()

        page.click("nav >> text=Controls")
        card = page.locator("[data-control='tests.rename']")
        assert card.locator("[data-state=enabled]").is_visible()
        page.evaluate("window.__notReloaded = true")
        card.locator("text=Pause…").click()
        card.locator("[data-step=pause-form]").wait_for()
        card.locator("input[value=global]").check()
        card.locator("button:has-text('Review impact')").click()  # no reason yet: error next to the field
        card.locator("#reason-tests-rename-error").wait_for()
        assert page.evaluate("window.__notReloaded") is True  # htmx swapped the panel (422 too)
        card.locator("#reason-tests-rename").fill("Provider incident INC-42")
        card.locator("button:has-text('Review impact')").click()
        card.locator("[data-impact]").wait_for()
        assert "Legacy rename will affect 2 workspaces across 5 tenants" in card.locator("[data-impact]").inner_text()
        assert "0 queued or running runs" in card.locator("[data-impact-runs]").inner_text()
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "controls-pause-review")
        card.locator("button:has-text('Confirm pause')").click()
        page.wait_for_selector("[data-control='tests.rename'] [data-state=paused-globally]")
        assert "Legacy rename paused globally." in page.inner_text("main")
        screenshot(page, "controls-paused")

        page.click("nav >> text=Runbooks")
        rb = page.locator("[data-runbook='tests.rename']")
        assert rb.locator("[data-state=paused]").inner_text() == "Paused"
        assert "Legacy rename is currently paused. Provider incident INC-42" in rb.inner_text()
        assert rb.locator("text=Preflight").is_visible()  # the button stays visible
        screenshot(page, "controls-runbook-paused")

        page.click("nav >> text=Controls")
        card = page.locator("[data-control='tests.rename']")
        card.locator("button:has-text('Resume')").click()
        card.locator("[data-step=resume-review]").wait_for()
        assert "Legacy rename will affect 2 workspaces across 5 tenants" in card.locator("[data-impact]").inner_text()
        card.locator("button:has-text('Confirm resume')").click()
        page.wait_for_selector("[data-control='tests.rename'] [data-state=enabled]")
        assert "Legacy rename resumed globally." in page.inner_text("main")

        page.click("nav >> text=Runbooks")
        assert page.locator("[data-runbook='tests.rename'] [data-state=enabled]").inner_text() == "Enabled"
        elapsed = time.monotonic() - started
        screenshot(page, "controls-runbook-enabled")
    assert elapsed < 60, f"pause + resume took {elapsed:.1f}s"
