"""Browser: every page of both planes renders under the strict Content-Security-Policy
(tenantpilot/web/headers.py) with no console error and no CSP violation, the htmx and
app.js behaviour that replaced inline handlers still works, and so does the RQ dashboard
under its relaxed policy.

Pages: a fixed list (so the data-rich tenant, run and report are the ones visited) and then
every same-plane link found on the visited pages, one page per URL shape (ids and query
values do not count), so a page added later is covered without editing this test."""
import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from tenantpilot import control_service, seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import OperationRun, Tenant, User
from tenantpilot.runs import Scope
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.test_dashboard import add_run, done

pytestmark = pytest.mark.browser

# Runs before any page script: keeps every securitypolicyviolation of the document.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
                              + ` at ${e.sourceFile || ''}:${e.lineNumber} ${e.sample || ''}`);
});
"""
# Not pages: downloads, JSON, the sign-out, and in the RQ dashboard anything but its views
# (its links to compact/requeue/delete are POSTed by its JavaScript).
NOT_A_PAGE = re.compile(r"/logout|/download|\.csv$|\.json$|\.zip$|/static/|/favicon\.ico$"
                        r"|^/system/ops/rq/(?!(\d+/)?(view|$))")
MAX_PAGES = 150


def seed(app, drain) -> dict:
    """Demo data (`flask demo seed` with every plugin's hook) plus runs of every kind the
    pages show: a fan-out run, a restore, a review pack, a failed run for the control
    tower's offender bars, and a control paused with history."""
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    from tenantpilot_onboarding.models import OnboardingDraft
    from tenantpilot_restore import service as restore
    from tenantpilot_restore.models import BackupItem, BackupSet
    from tenantpilot_review_packs import service as review_packs
    from tenantpilot_reports.models import StoredReport

    with app.app_context():
        owner = db.session.scalar(select(User).filter_by(email="owner@demo.test"))
        tenant = db.session.scalar(select(Tenant).filter_by(name="Northwind HQ"))
        tenant_ids = list(db.session.scalars(select(Tenant.id).where(Tenant.workspace_id == tenant.workspace_id)
                                             .order_by(Tenant.id)))
        backup = db.session.scalars(select(BackupSet).where(BackupSet.tenant_id == tenant.id)).first()
        items = list(db.session.scalars(select(BackupItem).where(BackupItem.backup_set_id == backup.id)
                                        .order_by(BackupItem.id)))
        canary = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=Actor.system(), source="cli")
        backfill = seam.start("findings.lifecycle.backfill", scope=Scope("all_tenants"), actor=Actor.system(),
                              source="cli")
        assert canary.ok and backfill.ok, (canary.message, backfill.message)
        result, restore_run = restore.start_restore(tenant, backup, items, "all", owner)
        assert result.ok, result.message
        dry_run = restore.record_dry_run(tenant, backup, items[:2], "selected", owner)
        outcome = review_packs.request_pack(tenant, owner, include_operations=True, include_pii=False)
        assert outcome.status == "started", outcome.message
        reports = {r.report_type: r.id for r in db.session.scalars(select(StoredReport).where(
            StoredReport.tenant_id == tenant.id))}
        ids = {"tenant": tenant.id, "backup": backup.id, "restore_run": restore_run.id, "dry_run": dry_run.id,
               "roles_report": reports["entra_admin_roles"], "posture_report": reports["permission_posture"],
               "canary_run": canary.run.id, "backfill_run": backfill.run.id, "restore_op_run": result.run.id,
               "pack_run": outcome.start.run.id, "workspace": tenant.workspace_id,
               "draft": db.session.scalar(select(OnboardingDraft.id))}
    drain(app)
    h = timedelta(hours=1)
    ids["failed_run"] = add_run(app, "ops.pipeline_canary", "Pipeline canary", ago=2 * h, outcome="partially_succeeded",
                                tenants={tenant_ids[0]: done("failed"), tenant_ids[1]: done("failed"),
                                         tenant_ids[2]: done("succeeded")},
                                failure_summary=[{"reason_code": "provider_timeout", "message": "timed out",
                                                  "tenant_id": tenant_ids[0]}])
    add_run(app, "findings.lifecycle.backfill", "Findings lifecycle backfill", ago=3 * h, outcome="failed",
            tenants={tenant_ids[0]: done("failed")})
    with app.app_context():
        ops = Actor.system()
        control_service.pause("restore.execute", "workspace", ids["workspace"], "Vendor incident INC-7781", None, ops)
        control_service.pause("restore.execute", "global", None, "Provider maintenance window", None, ops)
        control_service.resume("restore.execute", "global", None, ops)  # history: paused, paused, resumed
        db.session.commit()
        assert db.session.get(OperationRun, ids["restore_op_run"]).status == "completed"
    return ids


def shape(url: str) -> tuple:
    """A page's URL shape: ids and query values do not count, nor anything below an RQ
    dashboard view (queue names, registries, pages)."""
    parts = urlsplit(url)
    path = re.sub(r"/(\d+|[0-9a-f-]{16,})(?=/|$)", "/#", parts.path)
    path = re.sub(r"^(/system/ops/rq/#/view/\w+)/.*", r"\1", path)
    return path, tuple(sorted({k for k, _ in parse_qsl(parts.query)}))


class CspWatch:
    """Console errors, uncaught exceptions and CSP violations of one page."""

    def __init__(self, page):
        self.page, self.errors = page, []
        page.on("console", lambda m: m.type == "error" and self.errors.append(
            f"console: {m.text} ({m.location.get('url')})"))
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def problems(self) -> list[str]:
        self.page.wait_for_timeout(50)  # let late console events arrive
        return self.errors + [f"CSP: {v}" for v in self.page.evaluate("window.__cspViolations || []")]

    def assert_clean(self, where: str, expected: str | None = None):
        """No problem at all, or only ``expected`` (a pattern), which must then occur."""
        problems = self.problems()
        self.errors.clear()
        if expected:
            assert any(re.search(expected, p) for p in problems), f"{where}: {expected!r} not seen in {problems}"
            problems = [p for p in problems if not re.search(expected, p)]
        assert problems == [], f"{where}: {problems}"


def check_page(page, watch, url: str):
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status < 400, f"{url}: HTTP {response and response.status}"
    policy = dict((d.strip().split(" ", 1) + [""])[:2]
                  for d in response.headers.get("content-security-policy", "").split(";") if d.strip())
    assert policy.get("frame-ancestors") == "'none'", f"{url}: CSP {policy}"
    scripts, styles = policy.get("script-src", ""), policy.get("style-src", "")
    assert "'nonce-" in scripts and "'unsafe-inline'" not in scripts, f"{url}: CSP {policy}"
    path = urlsplit(url).path
    if path.endswith("/api/v1/docs"):  # the API reference pages: Redoc's inline styles only
        assert "'unsafe-eval'" not in scripts and policy.get("worker-src") == "'self' blob:", f"{url}: CSP {policy}"
    elif not path.startswith("/system/ops/rq/"):  # the RQ dashboard's relaxed policy
        assert "'unsafe-eval'" not in scripts and "'unsafe-inline'" not in styles, f"{url}: CSP {policy}"
    watch.assert_clean(url)


def crawl(page, watch, base: str, prefix: str, start: list[str]) -> list[str]:
    """Visit every page of ``start``, then every link under ``prefix`` they lead to, one
    page per URL shape not visited yet. Returns the visited paths."""
    queue, seen, visited = [(path, True) for path in start], set(), []
    while queue:
        path, listed = queue.pop(0)
        if path in visited or (not listed and shape(path) in seen) or NOT_A_PAGE.search(urlsplit(path).path):
            continue
        seen.add(shape(path))
        check_page(page, watch, base + path)
        visited.append(path)
        assert len(visited) <= MAX_PAGES, "crawl does not end"
        hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
        for href in hrefs:
            parts = urlsplit(href)
            if href.startswith(base) and parts.path.startswith(prefix):
                queue.append((parts.path + (f"?{parts.query}" if parts.query else ""), False))
    return visited


def test_every_page_renders_under_the_csp(app, drain, tmp_path):
    ids = seed(app, drain)
    t = ids["tenant"]
    queue_name = f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-runs"
    system_pages = ["/system/", "/system/?window=30d", "/system/ops/runbooks",
                    "/system/ops/runbooks/ops.pipeline_canary/preflight",
                    "/system/ops/runbooks/findings.lifecycle.backfill/preflight",
                    "/system/ops/runs", f"/system/ops/runs/{ids['canary_run']}", f"/system/ops/runs/{ids['backfill_run']}",
                    f"/system/ops/runs/{ids['failed_run']}", f"/system/ops/runs/{ids['restore_op_run']}",
                    f"/system/ops/runs/{ids['pack_run']}", "/system/ops/controls",
                    "/system/ops/controls/findings.lifecycle.backfill/pause", "/system/ops/alerts",
                    "/system/audit", "/system/break-glass",
                    "/system/ops/rq/0/view/queues", "/system/ops/rq/0/view/workers", "/system/ops/rq/0/view/jobs",
                    # the drained jobs, each linking to its job page (rendered by rq-dashboard's script)
                    f"/system/ops/rq/0/view/jobs/{queue_name}/finished/8/asc/1"]
    admin_pages = ["/admin/", f"/admin/t/{t}/", f"/admin/t/{t}/connection", f"/admin/t/{t}/findings",
                   f"/admin/t/{t}/backups", f"/admin/t/{t}/backups/{ids['backup']}", f"/admin/t/{t}/restore-runs",
                   f"/admin/t/{t}/restore-runs/new", f"/admin/t/{t}/restore-runs/{ids['restore_run']}",
                   f"/admin/t/{t}/restore-runs/{ids['dry_run']}", f"/admin/t/{t}/reports",
                   f"/admin/t/{t}/reports/{ids['roles_report']}", f"/admin/t/{t}/reports/{ids['posture_report']}",
                   f"/admin/t/{t}/review-packs", f"/admin/t/{t}/runs/{ids['restore_op_run']}",
                   f"/admin/t/{t}/runs/{ids['pack_run']}", "/admin/onboarding/", "/admin/onboarding/new",
                   f"/admin/onboarding/{ids['draft']}"]

    with live_server(app) as base, chromium(tmp_path) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        watch = CspWatch(page)

        # Platform plane, as a platform user with every capability (the demo's operator).
        sign_in(page, base, "system", "ops@demo.test", "demo-ops-pass")
        page.wait_for_selector("text=Control tower")
        watch.assert_clean("/system sign-in")
        system = crawl(page, watch, base, "/system", system_pages)
        assert set(system_pages) <= set(system)

        page.goto(f"{base}/system/?window=24h", wait_until="networkidle")
        bars = page.locator("[data-offender-tenant] svg.bar rect")
        assert bars.count() == 2 and bars.first.get_attribute("width") == "100%"
        widths = bars.evaluate_all("rs => rs.map(r => r.getBoundingClientRect().width)")
        assert widths[0] > widths[1] > 0  # 2 failed results, then 1: the bars still show it
        screenshot(page, "csp-system-console")
        page.goto(f"{base}/system/ops/rq/0/view/queues", wait_until="networkidle")
        page.wait_for_selector(f"text={queue_name}", timeout=15000)  # its inline script ran (nonce)
        screenshot(page, "csp-rq-dashboard")
        watch.assert_clean("RQ dashboard")

        # htmx + app.js: a 422 from the pause form is swapped into the card (data-swap-422),
        # then the staged review appears, with no reload.
        page.goto(f"{base}/system/ops/controls", wait_until="networkidle")
        card = page.locator("[data-control='findings.lifecycle.backfill']")
        page.evaluate("window.__notReloaded = true")
        card.locator("text=Pause…").click()
        card.locator("[data-step=pause-form]").wait_for()
        card.locator("input[value=global]").check()
        card.locator("button:has-text('Review impact')").click()
        card.locator("small.field-error[id^=reason-]").wait_for()  # the reason's error, next to the field
        card.locator("textarea[name=reason]").fill("SLA policy migration in progress")
        card.locator("button:has-text('Review impact')").click()
        card.locator("[data-impact]").wait_for()
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "csp-controls-review")
        # Chromium logs every 4xx answer to an XHR; this 422 is the form's designed answer.
        watch.assert_clean("controls pause → review impact", expected=r"status of 422 .*/pause\)$")

        # The tenant picker (htmx search) on a preflight, then the preflights' result pages
        # (POST answers, so not crawled) with each plugin's detail partial.
        page.goto(f"{base}/system/ops/runbooks/findings.lifecycle.backfill/preflight", wait_until="networkidle")
        page.check("input[value=single_tenant]")
        page.fill("#tenant_query", "Northwind HQ")
        page.wait_for_selector("#tenant-options >> text=Northwind HQ")
        page.check("#tenant-options label:has-text('Northwind HQ') input")
        page.click("text=Run preflight")
        page.wait_for_selector("text=Scope:")
        watch.assert_clean("findings preflight with the tenant picker")
        page.goto(f"{base}/system/ops/runbooks/ops.pipeline_canary/preflight", wait_until="networkidle")
        page.check("input[value=all_tenants]")
        page.click("text=Run preflight")
        page.wait_for_selector("text=Scope:")
        watch.assert_clean("canary preflight")

        # Tenant plane, as a workspace owner.
        sign_in(page, base, "admin", "owner@demo.test", "demo-owner-pass")
        page.wait_for_selector("text=Your role")
        watch.assert_clean("/admin sign-in")
        admin = crawl(page, watch, base, "/admin", admin_pages)
        assert set(admin_pages) <= set(admin)

        page.goto(f"{base}/admin/t/{t}/reports/{ids['roles_report']}", wait_until="networkidle")
        widths = page.locator("[data-chart=roles] .rp-bar > span").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().width)")
        assert widths and widths[0] > 0 and widths == sorted(widths, reverse=True)
        screenshot(page, "csp-report-roles")

        # The restore wizard past its GET steps (each later step is a POST's answer).
        page.goto(f"{base}/admin/t/{t}/restore-runs/new", wait_until="networkidle")
        page.click("button:has-text('Continue')")
        page.check("input[name=scope][value=all]")
        page.click("button:has-text('Run safety checks')")
        page.wait_for_selector("[data-check]")
        page.click("button:has-text('Preview changes')")
        page.wait_for_selector("form[data-form=restore-confirm]")
        watch.assert_clean("restore wizard up to the confirm step")

        page.goto(f"{base}/admin/t/{t}/", wait_until="networkidle")
        page.click("[data-tenant-action='support.diagnostics.open'] button")  # the bundle is a POST's page
        page.wait_for_selector("[data-support-bundle]")
        watch.assert_clean("support diagnostics bundle")

        # The workspace switcher submits itself on change (app.js, data-autosubmit).
        page.goto(f"{base}/admin/", wait_until="networkidle")
        first = page.inner_text("h2")
        page.select_option("#workspace_id", index=1)
        page.wait_for_function(f"document.querySelector('h2').innerText !== {first!r}")
        watch.assert_clean("workspace switcher")

    print(f"CSP-checked pages: {len(system)} on /system, {len(admin)} on /admin")
