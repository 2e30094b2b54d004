"""Browser: the account page of a plane — live sessions, password change, sign out everywhere."""
import pytest

from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_account_page_password_change_and_sign_out_everywhere(app, tmp_path):
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    with live_server(app) as base, chromium(tmp_path) as browser:
        errors = []
        other = browser.new_context().new_page()  # a second browser session of the same person
        sign_in(other, base, "admin", "owner@demo.test", "demo-owner-pass")
        page = browser.new_context().new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, "admin", "owner@demo.test", "demo-owner-pass")

        page.click("a[title='Password and sessions']")  # the name in the top bar
        page.wait_for_selector("text=Signed-in sessions")
        assert page.locator("text=2 active sessions").is_visible()
        assert page.locator("text=This browser").count() == 1
        assert page.locator("#current_password").get_attribute("type") == "password"

        page.fill("#current_password", "demo-owner-pass")
        page.fill("#new_password", "short")
        page.fill("#confirm_password", "short")
        page.click("button:has-text('Change password')")
        assert page.locator("#new_password-error").inner_text() == "Use 10 to 200 characters."
        page.fill("#current_password", "demo-owner-pass")
        page.fill("#new_password", "a-brand-new-pass-42")
        page.fill("#confirm_password", "a-brand-new-pass-42")
        page.click("button:has-text('Change password')")
        page.wait_for_selector("text=Every other session of yours has been signed out.")
        assert page.locator("text=1 active session.").is_visible()
        screenshot(page, "account-admin")

        other.goto(f"{base}/admin/")  # the other browser's session ended with the change
        assert "/admin/login" in other.url

        page.click("button:has-text('Sign out everywhere')")
        page.wait_for_url("**/admin/login")
        page.goto(f"{base}/admin/")
        assert "/admin/login" in page.url
        # Chromium logs the 422 of the rejected short password as a console error; nothing else.
        assert [e for e in errors if "status of 422" not in e] == [] and len(errors) == 1


def test_the_top_navigation_fits_a_390px_wide_screen(app, tmp_path):
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        sign_in(page, base, "system", "ops@demo.test", "demo-ops-pass")
        page.wait_for_selector("text=Control tower")
        overflow = page.evaluate("""() => [...document.querySelectorAll('.topbar a, .topbar button')]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1).map(el => el.textContent.trim())""")
        assert overflow == []
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(page, "topbar-390px")
