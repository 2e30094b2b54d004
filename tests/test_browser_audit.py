"""Browser: open the audit log, filter by action, open an event's detail."""
import pytest

from tenantpilot import audit
from tenantpilot.actors import Actor
from tests.browser import chromium, live_server, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_audit_log_filter_and_detail(make_app, factory, tmp_path):
    app = make_app(REDIS_URL=None)
    f = type(factory)(app)
    ws = f.workspace("Northwind")
    tenant = f.tenant(ws, name="Northwind Prod")
    f.platform_user(email="ops@example.test", password="ops-password-1")
    with app.app_context():
        for i in range(5):
            audit.record("platform.ops.runbooks.preflight", actor=Actor("platform", 1, "Alice Operator", "alice@ops.test"),
                         workspace_id=ws.id, tenant_id=tenant.id, target=("runbook", "tests.rename", "Legacy rename"),
                         summary=f"Preflight {i}", metadata={"runbook": "tests.rename", "affected_count": i})
        audit.record("operational_control.paused", actor=Actor("platform", 1, "Alice Operator", "alice@ops.test"),
                     target=("operational_control", "restore.execute", "Restore execution"),
                     summary="Paused Restore execution globally",
                     metadata={"control_key": "restore.execute", "scope_type": "global", "reason_text": "Provider incident",
                               "password": "hunter2"})
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "system", "ops@example.test", "ops-password-1")
        page.click("nav >> text=Audit")
        page.wait_for_selector("h2:has-text('Audit log')")
        assert page.locator("tr[data-event]").count() == 7  # 6 recorded + this sign-in
        page.fill("input[name=action]", "operational_control.paused")
        page.click("button:has-text('Filter')")
        page.wait_for_selector("[data-filter=action]")
        rows = page.locator("tr[data-event]")
        assert rows.count() == 1
        assert "Platform" in rows.first.inner_text() and "Alice Operator" in rows.first.inner_text()
        screenshot(page, "audit-list-filtered")
        rows.first.locator("td a").first.click()
        page.wait_for_selector("#audit-metadata")
        meta = page.inner_text("#audit-metadata")
        assert '"reason_text": "Provider incident"' in meta and '"password": "[redacted]"' in meta
        assert "hunter2" not in page.content()
        screenshot(page, "audit-event-detail")
        page.click("[data-link=same-target]")
        page.wait_for_selector("[data-filter=target_id]")
        assert page.locator("tr[data-event]").count() == 1
