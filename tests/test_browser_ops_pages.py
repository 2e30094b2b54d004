"""Browser: the alerts page after a partly failed run, and the RQ dashboard."""
import pytest

from tenantpilot import seam
from tenantpilot.actors import Actor
from tenantpilot.runs import Scope
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.support import fanout_plugin

pytestmark = pytest.mark.browser


def test_alerts_page_and_rq_dashboard(make_app, factory, drain, tmp_path):
    app = make_app(plugins=[fanout_plugin], ALERT_RETRY_INTERVALS="0,0,0")
    f = type(factory)(app)
    ws = f.workspace()
    f.tenants(ws, 3)
    f.tenant(ws, name="fail-contoso")
    f.platform_user(email="ops@example.test", password="ops-password-1")
    with app.app_context():
        run_id = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    drain(app)
    queue_name = f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-runs"
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, "system", "ops@example.test", "ops-password-1")
        page.click("text=Alerts")
        page.wait_for_selector(f"a[href='/system/ops/runs/{run_id}']")
        assert "sent" in page.inner_text("main")
        screenshot(page, "ops-alerts")
        page.click("text=RQ dashboard")
        page.wait_for_selector(f"text={queue_name}", timeout=15000)
        screenshot(page, "ops-rq-dashboard")
        assert errors == []
