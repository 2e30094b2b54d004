"""Browser: sign in to both planes, see the tenant list and the (empty) system console."""
import pytest

from tests.browser import chromium, live_server, screenshot

pytestmark = pytest.mark.browser


def test_sign_in_to_both_planes_in_a_real_browser(app, tmp_path):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})

        # Platform plane: a wrong password shows the error next to the field, then sign in.
        page.goto(f"{base}/system/")
        assert page.url.endswith("/system/login?next=/system/?") or "/system/login" in page.url
        page.fill("#email", "ops@demo.test")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        assert page.locator("#password-error").inner_text() == "E-mail or password is incorrect."
        page.fill("#password", "demo-ops-pass")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Control tower")
        assert page.locator("[data-kpi=started]").inner_text() == "0"
        assert page.locator("text=No operation runs yet").is_visible()
        screenshot(page, "foundation-system-console")

        # The tenant plane is a different session: not signed in there yet.
        page.goto(f"{base}/admin/")
        assert "/admin/login" in page.url
        page.fill("#email", "owner@demo.test")
        page.fill("#password", "demo-owner-pass")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Your role")
        rows = page.locator("tbody tr")
        assert rows.count() == 4
        first_ws = page.locator("h2").inner_text()
        # Switch workspace through the switcher (auto-submits on change).
        page.select_option("#workspace_id", index=1)
        page.wait_for_function(f"document.querySelector('h2').innerText !== {first_ws!r}")
        screenshot(page, "foundation-admin-tenants")
        page.locator("tbody tr a").first.click()
        page.wait_for_selector("text=Recent operation runs")
        assert page.locator("text=No operation runs for this tenant yet.").is_visible()
        screenshot(page, "foundation-admin-tenant-home")

        # Still signed in on /system: the planes do not interfere.
        page.goto(f"{base}/system/")
        assert page.locator("text=Control tower").is_visible()
