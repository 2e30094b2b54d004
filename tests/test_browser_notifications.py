"""Browser: a run finishes while the operator looks at the console; the bell shows it
within one poll; opening the notification goes to the run page."""
import time

import pytest

from tenantpilot import seam
from tenantpilot.runs import Scope
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import platform_actor

pytestmark = pytest.mark.browser


def test_the_bell_shows_a_finished_run_within_one_poll(app, factory, drain, tmp_path):
    factory.tenants(factory.workspace(), 3)
    ops = factory.platform_user(email="ops@example.test")
    with live_server(app) as base, chromium(tmp_path) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, base, "system", "ops@example.test", "platform-pass-123")
        page.wait_for_selector("#bell[data-unread='0']")
        with app.app_context():
            run_id = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=platform_actor(app, ops),
                                source="system_ui", context={"reason_code": "SUPPORT", "reason_text": "bell"}).run.id
        drain()
        finished = time.monotonic()
        page.wait_for_selector("#bell[data-unread='1']", timeout=15_000)  # one poll is 10 s
        latency = time.monotonic() - finished
        screenshot(page, "notifications-bell")
        page.click("#bell")
        page.wait_for_selector("text=Pipeline canary succeeded")
        screenshot(page, "notifications-page")
        page.click("button:has-text('Open run')")
        page.wait_for_url(f"**/system/ops/runs/{run_id}")
        page.wait_for_selector("#bell[data-unread='0']")
        assert errors == []
        print(f"\nnotification latency, run completion → bell: {latency:.1f} s")
