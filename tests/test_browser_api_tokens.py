"""Browser: an operator creates an API token on the account's "API tokens" page, copies
the secret shown once, uses it against the API, and revokes it."""
import httpx
import pytest

from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_create_use_and_revoke_a_token(app, tmp_path):
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    with live_server(app) as base, chromium(tmp_path) as browser:
        errors = []
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, "system", "ops@demo.test", "demo-ops-pass")
        page.click("a[title='Password and sessions']")
        page.click("a:has-text('API tokens')")
        page.wait_for_selector("h2:has-text('API tokens')")
        assert page.locator("text=No tokens yet.").is_visible()

        page.click("button:has-text('Create token')")  # nothing filled in: errors next to the fields
        assert page.locator("#name-error").inner_text() == "Give the token a name (what uses it)."
        assert page.locator("#capabilities-error").inner_text() == "Choose at least one capability."
        page.fill("#name", "Incident bot")
        page.select_option("#days", "30")
        page.check("input[value='platform.runbooks.view']")
        page.click("button:has-text('Create token')")
        page.wait_for_selector("text=Copy it now: it is shown only this once.")
        secret = page.input_value("#token-secret")
        assert secret.startswith("tps_")
        screenshot(page, "api-token-created")
        assert page.locator("input[name='capabilities']").count() > 2  # the form is ready for the next one

        answer = httpx.get(f"{base}/system/api/v1/runbooks", headers={"Authorization": f"Bearer {secret}"})
        # It holds no runbook's own capability, so it sees none, though its owner does.
        assert answer.status_code == 200 and answer.json()["runbooks"] == []

        page.goto(f"{base}/system/api-tokens")  # the secret is never shown again
        assert secret not in page.content()
        row = page.locator("tr", has_text="Incident bot")
        assert row.locator(".badge").inner_text() == "Active" and "from 127.0.0.1" in row.inner_text()
        row.locator("button:has-text('Revoke')").click()
        page.wait_for_selector("text=is revoked; requests with it are refused from now on.")
        assert page.locator("tr", has_text="Incident bot").locator(".badge").inner_text() == "Revoked"
        screenshot(page, "api-token-revoked")

        answer = httpx.get(f"{base}/system/api/v1/runbooks", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 401 and answer.json()["detail"] == "This token was revoked."
        # Chromium logs the 422 of the empty submit as a console error; nothing else.
        assert [e for e in errors if "status of 422" not in e] == []
