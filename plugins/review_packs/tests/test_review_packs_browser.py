"""Browser: a tenant manager requests a review pack, watches it become ready without a
reload (htmx), downloads it through its signed link, and an identical request reuses it."""
import hashlib
import zipfile

import pytest

from review_pack_helpers import TENANT_NAME, add_findings, packs
from tenantpilot_review_packs import plugin
from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def app(make_app):
    # Embedded mode: the in-process worker generates the pack while the browser watches.
    return make_app(plugins=[plugin], REDIS_URL=None, TENANTPILOT_EMBEDDED_WORKER=True)


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Review Workspace")
    tenant = factory.tenant(ws, name=TENANT_NAME)
    factory.user(email="manager@example.test", password="manager-pass-123", memberships=[(ws, "manager")])
    add_findings(app, tenant, 4)
    return tenant


def test_request_a_pack_watch_it_become_ready_and_download_it(app, world, tmp_path):
    tenant = world
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        sign_in(page, base, "admin", "manager@example.test", "manager-pass-123")
        page.wait_for_selector("text=Your role")
        page.click(f"tbody tr a:has-text('{TENANT_NAME}')")
        page.click("[data-tenant-page='review_packs.list']")
        page.wait_for_selector("form[data-form=review-pack-request]")
        assert page.locator("[data-tenant-page='review_packs.list'][aria-current=page]").is_visible()
        assert "No review packs yet." in page.inner_text("#review-packs")

        page.check("input[name=include_operations]")
        page.click("button[data-submit=request-pack]")
        page.wait_for_selector("text=is being generated")
        page.evaluate("window.__notReloaded = true")
        row = page.locator("[data-review-pack]").first
        row.locator("[data-pack-status]:text-is('Ready')").wait_for(timeout=30000)
        assert page.evaluate("window.__notReloaded") is True  # htmx swapped the table in place
        assert "4 findings" in row.inner_text() and "No personal data" in row.inner_text()
        screenshot(page, "review-packs-ready")

        (pack,) = packs(app, tenant)
        link = row.locator("[data-action=download]")
        href = link.get_attribute("href")
        assert f"/review-packs/{pack.id}/download?token=" in href
        with page.expect_download() as info:
            link.click()
        download = info.value
        assert download.suggested_filename.startswith(f"review-pack-{pack.id}-")
        saved = tmp_path / "pack.zip"
        download.save_as(saved)
        body = saved.read_bytes()
        assert hashlib.sha256(body).hexdigest() == pack.sha256 and len(body) == pack.file_size
        with zipfile.ZipFile(saved) as zf:
            assert {"manifest.json", "findings.csv", "operation_runs.json"} <= set(zf.namelist())
        response = page.request.get(base + href)  # the same link, through the browser's session
        assert response.status == 200 and response.headers["content-type"] == "application/zip"
        tampered = page.request.get(base + href[:-2] + ("xx" if not href.endswith("xx") else "yy"))
        assert tampered.status == 403

        # The same request again: the ready pack is reused, nothing new is generated.
        page.check("input[name=include_operations]")
        page.click("button[data-submit=request-pack]")
        page.wait_for_selector("text=was reused")
        assert page.locator("[data-review-pack]").count() == 1
        screenshot(page, "review-packs-reused")
    assert len(packs(app, tenant)) == 1
