"""Browser: every page of both planes passes axe-core with no serious or critical violation.

axe-core is vendored for the tests only (tests/support/vendor, see VERSIONS there) and
injected into each page with Playwright's ``add_script_tag``; the pages' strict CSP would
refuse that script, so only this test's browser context bypasses the CSP.

Which pages: every GET route of the app's URL map under ``/admin`` and ``/system`` (the
core's and every plugin's), each with its URL parameters filled in from seeded data; a
route that is not a page is listed in ``NOT_PAGES`` with the reason, and a page route this
test cannot fill in fails the test, so a page added later is checked without editing it.
Then every same-plane link found on those pages whose URL shape is new (another query
key, say), and the pages only a form's answer shows (preflight → confirm with its errors,
the restore wizard's later steps, a control's pause form and review), the sign-in pages,
the error pages and the break-glass banner. Signed in as the demo's platform operator and
workspace owner (seeded runs of every kind, controls, audit rows, reports, findings,
backups and restores, onboarding, notifications), then again as a read-only member (the
admin pages) and a platform viewer (what a lesser role sees, its 403 page included)."""
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import select

from tenantpilot import approvals, runbook_starts, seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationRun, PlatformUser
from tenantpilot.runs import Scope
from tenantpilot.web.apiv1 import api_plane
from tests.browser import chromium, live_server, screenshot, sign_in
from tests.helpers import platform_actor
from tests.test_browser_csp import NOT_A_PAGE, seed, shape

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "support" / "vendor" / "axe-core-4.14.1.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
IMPACTS = ("minor", "moderate", "serious", "critical")
FAILING = {"serious", "critical"}

# GET routes that are not pages a person opens, by endpoint (or blueprint prefix), and why.
NOT_PAGES = {
    "static": "static files (CSS, JS)",
    "public.healthz": "JSON health check",
    "admin.bell": "htmx fragment: the bell, polled inside every page (checked there)",
    "system.bell": "htmx fragment: the bell, polled inside every page (checked there)",
    "runs.run_progress": "htmx fragment: a run page's live progress (checked inside the run page)",
    "runbooks.tenant_options": "htmx fragment: the preflight's tenant picker results (checked inside the preflight)",
    "lookup.suggest_tenants": "htmx fragment: <option>s of a name filter's typeahead (checked inside the runs and audit pages)",
    "lookup.suggest_workspaces": "htmx fragment: <option>s of a name filter's typeahead (checked inside the runs and audit pages)",
    "runs.run_csv": "CSV download",
    "controls.panel": "htmx fragment: a control card's idle panel (checked inside the controls page)",
    "controls.workspace_options": "htmx fragment: the pause form's workspace picker (checked inside the form)",
    "onboarding_admin.verify_live": "htmx fragment: the onboarding draft's live check (checked inside the draft)",
    "restore_admin.restore_run_live": "htmx fragment: a restore run's live table (checked inside its page)",
    "review_packs_admin.review_packs_live": "htmx fragment: the review packs' live list (checked inside its page)",
    "review_packs_admin.download": "ZIP download",
    "rq_dashboard.": "the RQ dashboard: rq-dashboard's own pages and scripts (third party), not our templates",
}


def not_a_page(endpoint: str, rule: str = "") -> str | None:
    for key, why in NOT_PAGES.items():
        if endpoint == key or (key.endswith(".") and endpoint.startswith(key)):
            return why
    if api_plane(rule) and not rule.endswith("/docs"):  # the core's and every plugin's API endpoints
        return "JSON API: documents and problems, not pages (tests/test_api_schemathesis.py checks every operation)"
    return None


def url_values(app, ids: dict) -> tuple[dict, dict]:
    """How to fill in routes: values per endpoint (variants: one URL each) and per URL
    parameter name (the first value for a route of several parameters)."""
    registry = app.extensions["tenantpilot"].registry
    runbooks = list(registry.runbooks)
    with app.app_context():
        tenant_runs = list(db.session.scalars(select(OperationRun.id).where(
            OperationRun.tenant_id == ids["tenant"]).order_by(OperationRun.id)))
    system_runs = [ids[k] for k in ("canary_run", "backfill_run", "failed_run", "restore_op_run", "pack_run",
                                    "ops_run")]
    by_endpoint = {
        "runbooks.preflight": [{"key": k} for k in runbooks],
        "runbooks.confirm": ids["confirm_pages"],  # whole URLs: each the answer of a preflight run in the test
        "runs.run_detail": [{"run_id": r} for r in system_runs],
        "controls.pause": [{"key": k} for k in registry.control_keys],
        "admin.tenant_run": [{"tenant_id": ids["tenant"], "run_id": r} for r in tenant_runs],
        "reports_admin.report_detail": [{"tenant_id": ids["tenant"], "report_id": r}
                                        for r in (ids["roles_report"], ids["posture_report"])],
        "restore_admin.restore_run": [{"tenant_id": ids["tenant"], "restore_run_id": r}
                                      for r in (ids["restore_run"], ids["dry_run"])],
        "restore_admin.wizard_scope": [{"tenant_id": ids["tenant"], "backup_set_id": ids["backup"]}],
        "support_admin.open_diagnostics": [{"tenant_id": ids["tenant"]},
                                           {"tenant_id": ids["tenant"], "run_id": tenant_runs[-1]}],
        "audit_ui.audit_detail": [{"event_id": e} for e in ids["audit_events"]],
        "approvals.approval_detail": [{"approval_id": ids["approval"]}],
    }
    by_param = {
        "tenant_id": ids["tenant"], "backup_set_id": ids["backup"], "restore_run_id": ids["restore_run"],
        "report_id": ids["roles_report"], "draft_id": ids["draft"], "run_id": ids["failed_run"],
        "opening_id": ids["opening"], "event_id": ids["audit_events"][0],
        "approval_id": ids["approval"],
    }
    return by_endpoint, by_param


def enumerate_pages(app, ids: dict) -> tuple[dict, list, list]:
    """{plane: [url, ...]} of every GET page route, the excluded (rule, why) and the rules
    that could not be filled in."""
    by_endpoint, by_param = url_values(app, ids)
    pages, excluded, unfilled = {"admin": [], "system": []}, [], []
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods:
            continue  # POST-only: its answer is a page only through a form (the test's form steps)
        why = not_a_page(rule.endpoint, rule.rule)
        plane = rule.rule.split("/")[1]
        if why is None and plane not in pages:
            why = "outside both planes" if rule.rule != "/" else None
            plane = "admin"  # "/" leads to the admin plane
        if why:
            excluded.append((rule.rule, why))
            continue
        variants = by_endpoint.get(rule.endpoint)
        if variants is None:
            missing = [a for a in rule.arguments if a not in by_param]
            if missing:
                unfilled.append(f"{rule.rule} ({rule.endpoint}): no value for {', '.join(missing)}")
                continue
            variants = [{a: by_param[a] for a in rule.arguments}]
        for values in variants:
            if isinstance(values, str):
                pages[plane].append(values)
                continue
            path_args = {k: v for k, v in values.items() if k in rule.arguments}
            query = {k: v for k, v in values.items() if k not in rule.arguments}
            path = adapter.build(rule.endpoint, path_args, force_external=False)
            pages[plane].append(path + (f"?{urlencode(query)}" if query else ""))
    return pages, excluded, unfilled


class Axe:
    """Runs axe-core on pages and keeps every violation."""

    def __init__(self, page):
        self.page, self.checked, self.violations = page, [], []
        self.role, self.seen = "", set()  # a page is checked once per role

    def check(self, where: str):
        self.page.wait_for_load_state("networkidle")
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE))
        found = self.page.evaluate("""async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                    resultTypes: ['violations']});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map(n => `${n.target.join(' ')}: ${(n.failureSummary || '').replace(/\\s+/g, ' ')}`)}));
        }""", AXE_TAGS)
        self.checked.append(where)
        for v in found:
            self.violations.append({"page": where, **v})

    def visit(self, url: str, where: str, status: int | None = 200):
        """Open ``url`` as a full page, then check it (once per final address)."""
        response = self.page.goto(url, wait_until="networkidle")
        assert response is not None, url
        if status is not None:
            assert response.status == status, f"{where}: HTTP {response.status}"
        final = urlsplit(self.page.url)
        final = final.path + (f"?{final.query}" if final.query else "")
        if (self.role, final) in self.seen:
            return final  # a redirect to a page checked already
        self.seen.add((self.role, final))
        assert "text/html" in response.headers.get("content-type", ""), f"{where}: not HTML"
        assert self.page.evaluate("!!document.querySelector('main') && !!document.title"), (
            f"{where}: not a whole page (an htmx fragment?): list its endpoint in NOT_PAGES with the reason")
        self.check(final + (f" ({self.role})" if self.role else ""))
        return final

    def figures(self) -> tuple[Counter, Counter]:
        rules = Counter(v["impact"] for v in self.violations)
        nodes = Counter()
        for v in self.violations:
            nodes[v["impact"]] += len(v["nodes"])
        return rules, nodes


def extra_seed(app, ids: dict) -> None:
    """What the CSP test's seed leaves out: a run the operator started (a notification on
    the system plane) and audit rows to open."""
    with app.app_context():
        ops = db.session.scalar(select(PlatformUser).filter_by(email="ops@demo.test"))
        started = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=platform_actor(app, ops),
                             source="system_ui", context={"reason_code": "SUPPORT", "reason_text": "a11y"})
        assert started.ok, started.message
        ids["ops_run"] = started.run.id
        # A pending four-eyes request by the second operator: the operator walking the
        # pages sees it with its approve and reject forms.
        approver = db.session.scalar(select(PlatformUser).filter_by(email="approver@demo.test"))
        backfill = app.extensions["tenantpilot"].registry.runbooks["findings.lifecycle.backfill"]
        actor = Actor.platform(approver)
        event, _ = runbook_starts.record_preflight(backfill, {"kind": "all_tenants", "workspace_id": None,
                                                              "tenant_id": None}, actor)
        ids["approval"] = approvals.request(backfill, event, actor, "DATA_REPAIR", "a11y review", "system_ui").id
        ids["audit_events"] = list(db.session.scalars(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(3)))


def links(page, base: str, prefix: str) -> list[str]:
    out = []
    for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
        parts = urlsplit(href)
        if href.startswith(base) and parts.path.startswith(prefix):
            out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


def walk(axe, app, base: str, plane: str, urls: list[str]) -> None:
    """Every enumerated page, then each same-plane link of a new URL shape they lead to."""
    adapter = app.url_map.bind("localhost")
    seen = set()
    queue = [(u, True) for u in urls]
    while queue:
        url, listed = queue.pop(0)
        path = urlsplit(url).path
        if not listed:
            if shape(url) in seen or NOT_A_PAGE.search(path):
                continue
            try:
                endpoint, _ = adapter.match(path, method="GET")
            except Exception:
                continue  # 404 or 405: not a GET page
            if not_a_page(endpoint, path):
                continue
        seen.add(shape(url))
        axe.visit(base + url, url)
        queue.extend((u, False) for u in links(axe.page, base, f"/{plane}"))


def test_every_page_of_both_planes_passes_axe(app, drain, tmp_path):
    ids = seed(app, drain)
    extra_seed(app, ids)
    drain(app)
    t = ids["tenant"]
    with live_server(app) as base, chromium(tmp_path) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        axe = Axe(page)

        # Signed out: both sign-in pages, then one with its error.
        for plane in ("system", "admin"):
            axe.visit(f"{base}/{plane}/login", f"/{plane}/login")
        page.fill("#email", "nobody@demo.test")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        axe.check("/admin/login (failed sign-in)")

        # What only a form's answer gives the enumeration: a stored preflight per runbook
        # (the confirm page's ?preflight=) and a support diagnostics opening.
        sign_in(page, base, "system", "ops@demo.test", "demo-ops-pass")
        page.wait_for_selector("text=Control tower")
        ids["confirm_pages"] = []
        for key in app.extensions["tenantpilot"].registry.runbooks:
            page.goto(f"{base}/system/ops/runbooks/{key}/preflight", wait_until="networkidle")
            page.locator("input[name=kind]").first.check()
            page.click("button:has-text('Run preflight')")
            page.wait_for_url("**/confirm?preflight=*")
            ids["confirm_pages"].append(urlsplit(page.url).path + "?" + urlsplit(page.url).query)
        # An empty confirmation: its errors ("Request approval" where the scope needs four eyes).
        page.click("form[action$='/confirm'] button[type=submit]")
        page.wait_for_load_state("networkidle")
        axe.check("/system confirm with errors")
        sign_in(page, base, "admin", "owner@demo.test", "demo-owner-pass")  # (a session per plane)
        page.wait_for_selector("text=Your role")
        page.goto(f"{base}/admin/t/{t}/", wait_until="networkidle")
        page.click("[data-tenant-action='support.diagnostics.open'] button")
        page.wait_for_selector("[data-support-bundle]")
        ids["opening"] = int(urlsplit(page.url).path.rstrip("/").rsplit("/", 1)[1])

        pages, excluded, unfilled = enumerate_pages(app, ids)
        assert unfilled == [], "GET page routes this test cannot fill in (add their values to url_values): " \
                               + "; ".join(unfilled)

        # The system plane, as the demo's platform operator (every capability).
        walk(axe, app, base, "system", pages["system"])
        axe.visit(f"{base}/system/no-such-page", "/system 404", status=404)
        page.goto(f"{base}/system/ops/controls", wait_until="networkidle")
        card = page.locator("[data-control='findings.lifecycle.backfill']")
        card.locator("text=Pause…").click()
        card.locator("[data-step=pause-form]").wait_for()
        axe.check("/system controls: pause form")
        card.locator("input[value=global]").check()
        card.locator("button:has-text('Review impact')").click()
        card.locator("small.field-error").first.wait_for()
        axe.check("/system controls: pause form with errors")
        card.locator("textarea[name=reason]").fill("Accessibility review")
        card.locator("button:has-text('Review impact')").click()
        card.locator("[data-impact]").wait_for()
        axe.check("/system controls: pause review")
        page.goto(f"{base}/system/break-glass", wait_until="networkidle")
        page.fill("#reason", "Accessibility review of the banner")
        page.locator("form[action$='/break-glass/start'] button[type=submit]").click()
        page.wait_for_selector(".banner-danger")
        axe.check("/system with the break-glass banner")

        # The admin plane, as a workspace owner, then the restore wizard's later steps (POST answers).
        walk(axe, app, base, "admin", pages["admin"])
        axe.visit(f"{base}/admin/no-such-page", "/admin 404", status=404)
        page.goto(f"{base}/admin/t/{t}/restore-runs/new", wait_until="networkidle")
        page.click("button:has-text('Continue')")
        page.check("input[name=scope][value=all]")
        page.click("button:has-text('Run safety checks')")
        page.wait_for_selector("[data-check]")
        axe.check("/admin restore wizard: safety checks")
        page.click("button:has-text('Preview changes')")
        page.wait_for_selector("form[data-form=restore-confirm]")
        axe.check("/admin restore wizard: preview and confirm")
        screenshot(page, "a11y-restore-confirm")

        # Fewer rights, other affordances: the admin pages as a read-only member (their 403s
        # included), the system plane as a platform viewer.
        axe.role = "readonly"
        sign_in(page, base, "admin", "readonly@demo.test", "demo-readonly-pass")
        page.wait_for_selector("text=Your role")
        for url in pages["admin"]:
            axe.visit(base + url, f"{url} (readonly)", status=None)
        axe.role = "viewer"
        sign_in(page, base, "system", "viewer@demo.test", "demo-viewer-pass")
        page.wait_for_selector("text=Control tower")
        axe.visit(f"{base}/system/", "/system/ (viewer)")
        axe.visit(f"{base}/system/ops/runbooks", "/system/ops/runbooks (viewer)", status=403)

    rules, nodes = axe.figures()
    for v in axe.violations:
        print(f"[{v['impact']}] {v['id']} on {v['page']}: {v['help']}")
        for n in v["nodes"][:3]:
            print(f"    {n}")
    by_rule = Counter((v["impact"], v["id"]) for v in axe.violations)
    planes = Counter(p.split(" ")[0].split("/")[1] for p in axe.checked)
    print(f"\naxe-core {AXE.name.removeprefix('axe-core-').removesuffix('.min.js')} ({', '.join(AXE_TAGS)}): "
          f"pages checked {len(axe.checked)} (/system {planes['system']}: signed out, operator, viewer; "
          f"/admin {planes['admin']}: signed out, owner, read-only); "
          f"violations by impact: " + ", ".join(f"{i} {rules.get(i, 0)}" for i in IMPACTS)
          + " (elements: " + ", ".join(f"{i} {nodes.get(i, 0)}" for i in IMPACTS) + "); by rule: "
          + (", ".join(f"{rule} ({impact}) {n}" for (impact, rule), n in by_rule.most_common()) or "none"))
    reasons = {}
    for route, why in excluded:
        reasons.setdefault(why, []).append(route)
    print("GET routes that are not pages: " + "; ".join(
        f"{routes[0] if len(routes) == 1 else f'{len(routes)} routes ({routes[0]}, …)'}: {why}"
        for why, routes in reasons.items()))
    failing = [v for v in axe.violations if v["impact"] in FAILING]
    assert failing == [], "serious/critical axe violations:\n" + "\n".join(
        f"{v['page']}: {v['id']} ({v['impact']}) {v['help']}: {v['nodes'][:3]}" for v in failing)
