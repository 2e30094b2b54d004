"""Browser: the control tower's window selector changes every section (24h → 7d → 30d)."""
from datetime import timedelta

import pytest

from tests.browser import chromium, live_server, screenshot, sign_in
from tests.test_dashboard import NOLEAK, add_run, done

pytestmark = pytest.mark.browser


def test_window_selector_switches_the_kpis(app, factory, tmp_path):
    ws = factory.workspace("Browser WS")
    t1, t2 = factory.tenant(ws, name=NOLEAK).id, factory.tenant(ws).id
    h, d = timedelta(hours=1), timedelta(days=1)
    add_run(app, "alpha.sync", "Alpha sync", ago=2 * h, outcome="failed", tenants={t1: done("failed")},
            failure_summary=[{"reason_code": "provider_timeout", "message": "timed out", "tenant_id": t1}])
    add_run(app, "alpha.sync", "Alpha sync", ago=3 * h, tenants={t2: done("succeeded")})
    add_run(app, "beta.report", "Beta report", ago=3 * d, outcome="partially_succeeded",
            tenants={t1: done("failed", 3 * d), t2: done("succeeded", 3 * d)})
    add_run(app, "beta.report", "Beta report", ago=20 * d, outcome="failed", tenants={t2: done("failed", 20 * d)})
    add_run(app, "alpha.sync", "Alpha sync", ago=30 * timedelta(minutes=1), status="queued",
            tenants={t1: ("pending", None, None)})
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    # Product telemetry: 1 event in 24h, 3 in 7d, 4 in 30d (two families).
    from tenantpilot import telemetry
    from tenantpilot.timeutil import utcnow

    with app.app_context():
        now = utcnow()
        for ago, name, meta in ((2 * h, "product.operations.started", {"operation_type": "alpha.sync"}),
                                (2 * d, "product.operations.started", {"operation_type": "beta.report"}),
                                (4 * d, "product.stored_report.created", {"report_type": "permission_posture"}),
                                (25 * d, "product.stored_report.created", {"report_type": "entra_admin_roles"})):
            assert telemetry.record(name, workspace_id=ws.id, tenant_id=t1, metadata=meta, occurred_at=now - ago)
    expected = {"Last 24 hours": ("3", "1"), "Last 7 days": ("4", "2"), "Last 30 days": ("5", "3")}
    telemetry_expected = {"Last 24 hours": ("1", "0", "1 event in Last 24 hours"),
                          "Last 7 days": ("2", "1", "3 events in Last 7 days"),
                          "Last 30 days": ("2", "2", "4 events in Last 30 days")}
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, "system", "ops@example.test", "ops-password-1")
        page.wait_for_selector("text=Control tower")
        for label, (started, failed) in expected.items():
            if label != "Last 24 hours":
                page.click(f".window-select >> text={label}")
            page.wait_for_selector(f"[aria-current=page] >> text={label}")
            assert page.locator("[data-kpi=started]").inner_text() == started, label
            assert page.locator("[data-kpi=failed]").inner_text() == failed, label
            ops, reports, description = telemetry_expected[label]
            widget = page.locator("[data-widget='telemetry.product']")
            assert widget.locator("[data-telemetry='product.operations.started'] [data-count]").inner_text() == ops
            assert widget.locator("[data-telemetry='product.stored_report.created'] [data-count]").inner_text() == reports
            assert description in widget.inner_text(), label
            assert NOLEAK not in page.content()
        assert page.url.endswith("/system/?window=30d")
        assert page.locator("[data-offender-type]").count() == 2
        assert page.locator("[data-failure]").count() == 3
        assert page.locator("[data-health=stale] [data-value]").inner_text() == "1"
        screenshot(page, "dashboard-control-tower-30d")
        page.click(f"text=Tenant #{t2}")
        page.wait_for_selector("text=Operation runs")
        assert f"tenant={t2}" in page.url and "window=30d" in page.url
        assert errors == []
