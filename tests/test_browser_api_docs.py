"""Browser: the API reference pages (/system/api/v1/docs, /admin/api/v1/docs) render each
plane's OpenAPI document with the vendored Redoc, signed out (they are public, like the
documents), under their relaxed policy with no CSP violation and no console error."""
import pytest

from tests.browser import chromium, live_server, screenshot
from tests.test_browser_csp import RECORD_VIOLATIONS, CspWatch

pytestmark = pytest.mark.browser

# An operation each plane's core document always has, as Redoc titles it (its summary).
OPERATIONS = {
    "system": "Start from a stored preflight",
    "admin": "One tenant (404 when the owner is not a member of its workspace).",
}


def test_reference_pages_render_the_plane_documents(app, tmp_path):
    with live_server(app) as base, chromium(tmp_path) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        watch = CspWatch(page)
        for plane, operation in OPERATIONS.items():
            response = page.goto(f"{base}/{plane}/api/v1/docs", wait_until="networkidle")
            assert response.status == 200
            policy = response.headers["content-security-policy"]
            assert "'unsafe-eval'" not in policy and "script-src 'self' 'nonce-" in policy
            # Redoc fetched /<plane>/api/v1/openapi.json and rendered it: the API title,
            # the operation's heading in the content and its entry in the side menu.
            title = app.config[f"{plane.upper()}_API_API_TITLE"]
            page.locator("h1", has_text=title).wait_for(timeout=15_000)
            page.locator("h2", has_text=operation).first.wait_for()
            assert page.locator("[role=menuitem]", has_text=operation[:30]).count() >= 1
            assert page.get_by_text("Something went wrong").count() == 0  # Redoc's own error box
            # Search finds it: Redoc builds its index in the blob: worker the policy allows.
            page.fill("input[aria-label=Search]", operation.split()[0])
            page.locator("[data-role='search:results'] [role=menuitem]", has_text=operation[:30]).first.wait_for(
                timeout=10_000)
            watch.assert_clean(f"{plane} reference")
            print(f"{plane}: {screenshot(page, f'api_docs_{plane}')}")
