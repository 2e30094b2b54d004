"""Browser: app.js tells the server the browser's time zone (the tp_tz cookie) on the first
page; the next pages show every time in that zone, the run page says how long the run
waited and ran, and relative hints keep up while the page stays open."""
import re
from datetime import timedelta

import pytest

from tenantpilot import seam
from tenantpilot.extensions import db
from tenantpilot.models import OperationRun
from tenantpilot.runs import Scope
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import platform_actor

pytestmark = pytest.mark.browser

# Each <time>: its text, and the same instant formatted by the browser in its own zone.
TIMES_JS = """() => Array.from(document.querySelectorAll('.when > time[datetime]')).map(el => {
  const d = new Date(el.getAttribute('datetime'));
  const f = new Intl.DateTimeFormat('sv-SE', {year: 'numeric', month: '2-digit', day: '2-digit',
                                              hour: '2-digit', minute: '2-digit', hour12: false});
  return [el.textContent, f.format(d), el.getAttribute('datetime')];
})"""


def test_times_follow_the_browsers_zone_after_the_first_page(app, factory, drain, tmp_path):
    factory.tenants(factory.workspace(), 3)
    ops = factory.platform_user(email="ops@example.test")
    with app.app_context():
        run_id = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=platform_actor(app, ops),
                            source="system_ui", context={"reason_code": "SUPPORT", "reason_text": "times"}).run.id
    drain()
    with app.app_context():  # a run that took a while: it waited 3 s and ran 2 min 10 s
        run = db.session.get(OperationRun, run_id)
        run.started_at = run.completed_at - timedelta(minutes=2, seconds=10)
        run.created_at = run.started_at - timedelta(seconds=3)
        db.session.commit()
    with live_server(app) as base, chromium(tmp_path) as browser:
        context = browser.new_context(timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # First page: no cookie yet, so the server could only say UTC; app.js sets it.
        page.goto(f"{base}/system/login")
        page.wait_for_function("document.cookie.includes('tp_tz=')")
        cookie = next(c for c in context.cookies() if c["name"] == "tp_tz")
        assert (cookie["value"], cookie["path"], cookie["sameSite"]) == ("Europe/Berlin", "/", "Lax")
        assert cookie["expires"] > 0  # persistent (about a year), not a session cookie

        sign_in(page, base, "system", "ops@example.test", "platform-pass-123")
        page.goto(f"{base}/system/ops/runs/{run_id}")
        page.wait_for_selector("[data-duration='ran']")
        shown = page.evaluate(TIMES_JS)
        assert len(shown) >= 3, shown  # created, completed, tenants' finish, audit events
        for text, browser_local, iso in shown:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", text), text
            assert text.startswith(browser_local), (text, browser_local, iso)  # the browser's own reading
            assert iso.endswith("+00:00")
        assert page.inner_text("[data-run-times]") == "Queued for 3 sec · Ran for 2 min 10 sec"
        path = screenshot(page, "times-run-page")
        assert path.stat().st_size > 10_000

        # Relative hints follow the clock while the page stays open (app.js, every 30 s).
        page.clock.install()
        page.reload()
        page.wait_for_selector("[data-rel]")
        page.clock.fast_forward("10:00")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('[data-rel]')).some(e => e.textContent === '(10 minutes ago)')")
        # The expiry picker names the browser's zone.
        page.goto(f"{base}/system/ops/controls")
        page.click("a[href$='/pause'] >> nth=0")
        page.wait_for_selector("label:has-text('Expires at (Europe/Berlin)')")
        assert errors == []
