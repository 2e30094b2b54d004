"""Issue 13's bugs of the operator's day: the tenant picker searches, reasons are required
where SPEC 3 says, a cancelled run does not read 100%, the paused message once, clean
login redirects, the configured break-glass duration, and platform staff not counted as
product usage."""
import re

import pytest
from sqlalchemy import func, select

from tenantpilot import seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import BreakGlassSession, OperationalControlActivation, ProductUsageEvent, User
from tenantpilot.runs import Scope
from tenantpilot.testing import csrf_from, form_fields, post_form, signed_in
from tests.helpers import audit_rows, count, platform_actor, run_row

CANARY = "ops.pipeline_canary"
BACKFILL = "findings.lifecycle.backfill"  # a runbook with a control key


@pytest.fixture
def ops(app, factory):
    return factory.platform_user(email="ops@example.test")


def test_the_tenant_picker_searches_what_is_typed_among_500_tenants(app, factory, ops):
    ws = factory.workspace()
    factory.tenants(ws, 500)
    client = signed_in(app, "system", "ops@example.test")
    broad = client.get("/system/ops/tenant-options?tenant_query=Bulk").get_data(as_text=True)
    assert broad.count('name="tenant_id"') == 20
    assert "Showing 20 of 500 matching tenants" in broad
    found = client.get("/system/ops/tenant-options?tenant_query=bulk+tenant+437").get_data(as_text=True)
    assert found.count('name="tenant_id"') == 1 and "Bulk tenant 437" in found
    assert "Showing" not in found
    nothing = client.get("/system/ops/tenant-options?tenant_query=%25").get_data(as_text=True)
    assert "No matching active tenant." in nothing  # "%" is a character, not a wildcard


def _confirm_page(client, key=CANARY):
    r = post_form(client, f"/system/ops/runbooks/{key}/preflight", {"kind": "all_tenants"})
    return r.headers["Location"], client.get(r.headers["Location"]).get_data(as_text=True)


def _confirm_fields(body, key=CANARY, **data):
    return {**form_fields(body, f"/system/ops/runbooks/{key}/confirm"), **data}


def test_the_canary_all_tenants_confirm_requires_a_reason(app, factory, ops):
    factory.tenants(factory.workspace(), 3)
    client = signed_in(app, "system", "ops@example.test")
    location, body = _confirm_page(client)
    assert "(optional)" not in body and "(required for this scope)" in body
    r = client.post(location.split("?")[0], data=_confirm_fields(body, confirmation="CANARY", reason_code="SUPPORT"))
    assert r.status_code == 422 and "A reason (at least 5 characters) is required" in r.get_data(as_text=True)
    assert audit_rows(app, "platform.ops.runbooks.start") == []


def _legacy_findings(app, tenant_ids):
    """Findings the backfill runbook has work on (open, no lifecycle dates)."""
    from sqlalchemy import insert
    from tenantpilot_findings.models import Finding

    from tenantpilot.timeutil import utcnow

    with app.app_context():
        db.session.execute(insert(Finding), [
            {"tenant_id": t, "type": "compliance", "severity": "medium", "status": "open", "title": "Legacy",
             "created_at": utcnow()} for t in tenant_ids])
        db.session.commit()


def test_the_paused_message_appears_once_on_a_blocked_confirm(app, factory, ops):
    _legacy_findings(app, factory.tenants(factory.workspace(), 2))
    client = signed_in(app, "system", "ops@example.test")
    location, body = _confirm_page(client, BACKFILL)
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key=BACKFILL, scope_type="global",
                                                    reason_text="Queue maintenance window"))
        db.session.commit()
    r = client.post(location.split("?")[0], data=_confirm_fields(
        body, BACKFILL, confirmation="BACKFILL", reason_code="SUPPORT", reason_text="repair legacy findings"))
    html = r.get_data(as_text=True)
    assert r.status_code == 409
    assert html.count("is currently paused. Queue maintenance window") == 1


def test_a_cancelled_run_does_not_read_as_a_full_bar(app, factory, ops):
    factory.tenants(factory.workspace(), 12)
    with app.app_context():
        run_id = seam.start(CANARY, scope=Scope("all_tenants"), actor=platform_actor(app, ops), source="cli",
                            context={"reason_code": "SUPPORT", "reason_text": "cancel me"}).run.id
    client = signed_in(app, "system", "ops@example.test")
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    client.post(f"/system/ops/runs/{run_id}/cancel", data={"csrf_token": csrf_from(page), "confirmed": "yes"})
    assert run_row(app, run_id).outcome == "cancelled"
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert 'data-percent="0"' in page and "0%</strong> — 0 of 12 tenants done" in page
    assert "12 cancelled before they ran" in page


@pytest.mark.parametrize("plane,path", [("admin", "/admin/"), ("system", "/system/"),
                                        ("system", "/system/ops/runs")])
def test_sign_in_redirects_carry_no_stray_question_mark(client, plane, path):
    r = client.get(path)
    assert r.status_code == 302
    assert not r.headers["Location"].endswith("%3F") and "?%3F" not in r.headers["Location"]
    assert r.headers["Location"].endswith("next=" + path)


def test_break_glass_duration_defaults_to_the_configured_minutes(make_app):
    app = make_app(TENANTPILOT_BREAK_GLASS_MINUTES=45)
    from tenantpilot.testing import Factory

    Factory(app).platform_user(email="ops@example.test")
    client = signed_in(app, "system", "ops@example.test")
    page = client.get("/system/break-glass").get_data(as_text=True)
    assert re.search(r'id="minutes"[^>]*value="45"', page)
    r = client.post("/system/break-glass/start", data={"reason": "Incident INC-7 needs access", "minutes": "",
                                                       "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    with app.app_context():
        session = db.session.scalar(select(BreakGlassSession))
        assert round((session.expires_at - session.started_at).total_seconds() / 60) == 45


def test_platform_staff_starts_are_not_product_usage(app, factory, ops):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    member = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    with app.app_context():
        assert seam.start("findings.lifecycle.backfill", scope=Scope("single_tenant", tenant_id=tenant.id),
                          actor=platform_actor(app, ops), source="system_ui").status == "started"
        assert db.session.scalar(select(func.count()).select_from(ProductUsageEvent)) == 0
        human = Actor.human(db.session.get(User, member.id))
        assert seam.start(CANARY, scope=Scope("single_tenant", tenant_id=tenant.id), actor=human,
                          source="tenant_ui").status in ("started", "forbidden")
    # Whatever the canary allows a tenant user, the platform start above recorded nothing.
    assert count(app, ProductUsageEvent, ProductUsageEvent.user_id.is_(None)) == 0


def test_retry_failed_is_not_offered_for_a_tenant_plane_run(app, factory, ops):
    from tenantpilot.models import OperationRun, OperationRunTenant

    ws = factory.workspace()
    tenant = factory.tenant(ws)
    with app.app_context():  # a finished tenant-plane run (not a runbook) with a failed tenant
        run = OperationRun(type="restore.execute", status="completed", outcome="failed", workspace_id=ws.id,
                           tenant_id=tenant.id, run_identity_hash="x" * 64, tenants_total=1, tenants_done=1,
                           tenants_failed=1, context={"scope": {"kind": "single_tenant", "tenant_id": tenant.id}})
        db.session.add(run)
        db.session.flush()
        db.session.add(OperationRunTenant(run_id=run.id, tenant_id=tenant.id, status="failed", accounted=True))
        db.session.commit()
        run_id = run.id
    client = signed_in(app, "system", "ops@example.test")
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert "Retry 1 failed tenant</button>" not in page and "its members can run it again from there" in page
    r = client.post(f"/system/ops/runs/{run_id}/retry-failed", data={"csrf_token": csrf_from(page)})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/system/ops/runs/{run_id}")
    assert count(app, OperationRun) == 1


def test_cancel_run_asks_first_and_says_what_happens_to_running_tenants(app, factory, ops):
    factory.tenants(factory.workspace(), 5)
    with app.app_context():
        run_id = seam.start(CANARY, scope=Scope("all_tenants"), actor=platform_actor(app, ops), source="cli",
                            context={"reason_code": "SUPPORT", "reason_text": "cancel me"}).run.id
        # Two tenants are mid-run, one finished: what cancel means differs for each.
        from tenantpilot.models import OperationRunTenant

        rows = db.session.scalars(select(OperationRunTenant).where(OperationRunTenant.run_id == run_id)
                                  .order_by(OperationRunTenant.tenant_id)).all()
        rows[0].status, rows[1].status = "running", "running"
        db.session.commit()
    client = signed_in(app, "system", "ops@example.test")
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert f'href="/system/ops/runs/{run_id}/cancel"' in page and "Cancel run…" in page
    assert f'action="/system/ops/runs/{run_id}/cancel"' not in page  # no one-click cancel
    confirm = client.get(f"/system/ops/runs/{run_id}/cancel").get_data(as_text=True)
    assert "3 pending tenants" in confirm and "will not run" in confirm
    assert "2 tenants running now" in confirm and "does not interrupt" in confirm
    # A POST without the confirmation (an old form, a script) only shows the question.
    r = client.post(f"/system/ops/runs/{run_id}/cancel", data={"csrf_token": csrf_from(confirm)})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/runs/{run_id}/cancel")
    assert run_row(app, run_id).cancel_requested is False
    assert audit_rows(app, "platform.ops.runs.cancel") == []
    r = client.post(f"/system/ops/runs/{run_id}/cancel", data={"csrf_token": csrf_from(confirm), "confirmed": "yes"})
    assert r.status_code == 302 and run_row(app, run_id).cancel_requested is True
    assert len(audit_rows(app, "platform.ops.runs.cancel")) == 1


def test_cancel_of_a_completed_run_goes_back_to_the_run(app, factory, ops, drain):
    factory.tenants(factory.workspace(), 2)
    with app.app_context():
        run_id = seam.start(CANARY, scope=Scope("all_tenants"), actor=platform_actor(app, ops), source="cli",
                            context={"reason_code": "SUPPORT", "reason_text": "finish"}).run.id
    drain()
    client = signed_in(app, "system", "ops@example.test")
    r = client.get(f"/system/ops/runs/{run_id}/cancel")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/system/ops/runs/{run_id}")
    assert "nothing to cancel" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_a_preflight_that_finds_nothing_offers_no_start(app, factory, ops):
    """Backfill with no legacy findings: the page says so and shows no Start form; a POST
    from an old tab starts nothing. The canary counts tenants (its work is the tenants)."""
    factory.tenants(factory.workspace(), 3)
    client = signed_in(app, "system", "ops@example.test")
    location, body = _confirm_page(client, BACKFILL)
    assert 'data-figure="affected">0<' in body
    assert "data-nothing-to-do" in body and "Nothing to change" in body
    assert "Start Findings" not in body and 'name="confirmation"' not in body
    token = csrf_from(client.get("/system/account").get_data(as_text=True))
    r = client.post(location.split("?")[0], data={
        "csrf_token": token, "preflight": re.search(r"preflight=(\d+)", location).group(1),
        "idempotency_token": "old-tab-1", "confirmation": "BACKFILL", "reason_code": "SUPPORT",
        "reason_text": "repair legacy findings"})
    assert r.status_code == 422 and "Nothing to change" in r.get_data(as_text=True)
    assert audit_rows(app, "platform.ops.runbooks.start") == []
    _, canary = _confirm_page(client, CANARY)
    assert "Tenants to probe" in canary and 'data-figure="affected">3<' in canary
    assert "data-nothing-to-do" not in canary and 'name="confirmation"' in canary

