"""The operator flow on /system/ops: catalog → preflight → confirm → run, runs list and
run detail (progress, CSV, cancel, retry failed), circuit breaker, audit."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationalControlActivation, OperationRun, Tenant
from tenantpilot.testing import csrf_from, login, post_form, signed_in
from tenantpilot.timeutil import utcnow
from tests.helpers import audit_rows, count, queued_jobs, run_row, tenant_rows
from tests.support import rename_plugin

OPS = ("system", "ops@example.test", "ops-password-1")


@pytest.fixture
def app(make_app):
    rename_plugin.ALWAYS_FAIL["on"] = False
    return make_app(plugins=[rename_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=5)


@pytest.fixture
def world(app, factory):
    ws, ws2 = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    tenants = [factory.tenant(ws, name=f"legacy Northwind {i}") for i in range(3)]
    tenants += [factory.tenant(ws2, name="Fabrikam clean"), factory.tenant(ws2, name="legacy Fabrikam")]
    factory.tenant(ws2, name="legacy Archived", status="archived")
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    factory.platform_user(email="nocap@example.test", password="nocap-password-1",
                          capabilities=["platform.access_system_panel", "platform.runbooks.view",
                                        "platform.runbooks.run", "platform.ops.view"])
    return {"ws": ws, "ws2": ws2, "tenants": tenants}


def preflight(client, data, key="tests.rename"):
    return post_form(client, f"/system/ops/runbooks/{key}/preflight", data)


def confirm(client, location, **data):
    page = client.get(location)
    body = page.get_data(as_text=True)
    fields = {"csrf_token": csrf_from(body), "preflight": re.search(r'name="preflight" type="hidden" value="(\d+)"', body).group(1)}
    return client.post("/system/ops/runbooks/tests.rename/confirm", data={**fields, **data}), body


def names(app):
    with app.app_context():
        return sorted(db.session.scalars(select(Tenant.name)))


def test_catalog_shows_runbooks_one_may_run(app, world):
    client = signed_in(app, *OPS)
    body = client.get("/system/ops/runbooks").get_data(as_text=True)
    assert "Legacy rename" in body and 'data-state="enabled"' in body
    other = signed_in(app, "system", "nocap@example.test", "nocap-password-1")
    assert "Legacy rename" not in other.get_data(as_text=True) if False else "Legacy rename" not in \
        other.get("/system/ops/runbooks").get_data(as_text=True)
    assert other.get("/system/ops/runbooks/tests.rename/preflight").status_code == 403
    # With a valid CSRF token the request reaches the capability check: 403, never a preflight.
    token = csrf_from(other.get("/system/ops/runbooks").get_data(as_text=True))
    resp = other.post("/system/ops/runbooks/tests.rename/preflight", data={"kind": "all_tenants", "csrf_token": token})
    assert resp.status_code == 403
    assert "Legacy rename" not in resp.get_data(as_text=True)
    # Without one it stops earlier, at the CSRF check.
    assert other.post("/system/ops/runbooks/tests.rename/preflight", data={"kind": "all_tenants"}).status_code == 400
    assert count(app, AuditLog, AuditLog.action == "platform.ops.runbooks.preflight") == 0


def test_full_flow_preflight_numbers_equal_rows_changed(app, world, drain):
    client = signed_in(app, *OPS)
    before = names(app)
    resp = preflight(client, {"kind": "all_tenants"})
    assert resp.status_code == 302
    assert names(app) == before  # preflight wrote no domain data
    [event] = audit_rows(app, "platform.ops.runbooks.preflight")
    assert event.meta["result"]["affected_count"] == 4  # the archived tenant is outside the universe
    resp, body = confirm(client, resp.headers["Location"], confirmation="RENAME", reason_code="DATA_REPAIR",
                         reason_text="Legacy names break the report export")
    assert "Legacy rename: 4 items across 4 tenants" in body and "all tenants" in body
    assert resp.status_code == 302 and "/system/ops/runs/" in resp.headers["Location"]
    run_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    run = run_row(app, run_id)
    assert run.context["preflight"]["affected_count"] == 4 and run.context["reason_code"] == "DATA_REPAIR"
    assert run.context["source"] == "system_ui" and run.context["preflight_audit_id"] == event.id
    [start] = audit_rows(app, "platform.ops.runbooks.start")
    assert start.target_id == str(run_id) and start.meta["reason_text"] == "Legacy names break the report export"
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "succeeded")
    assert run.summary_counts["updated"] == 4 == event.meta["result"]["affected_count"]
    assert "legacy Archived" in names(app) and sum(n.startswith("legacy ") for n in names(app)) == 1
    assert len(audit_rows(app, "platform.ops.runbooks.completed")) == 1
    page = client.get(f"/system/ops/runs/{run_id}").get_data(as_text=True)
    assert 'data-outcome="succeeded"' in page and 'data-percent="100"' in page
    assert "platform.ops.runbooks.start" in page and "platform.ops.runbooks.preflight" in page


@pytest.mark.parametrize("data, field, message", [
    ({"confirmation": "rename", "reason_code": "DATA_REPAIR", "reason_text": "valid reason"}, "confirmation",
     "Type RENAME exactly"),
    ({"confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": ""}, "reason_text",
     "A reason (at least 5 characters) is required"),
    ({"confirmation": "RENAME", "reason_code": "", "reason_text": "valid reason"}, "reason_code",
     "Choose a reason code."),
])
def test_bad_confirmations_are_refused_next_to_the_field(app, world, data, field, message):
    client = signed_in(app, *OPS)
    resp, _ = confirm(client, preflight(client, {"kind": "all_tenants"}).headers["Location"], **data)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert f'id="{field}-error"' in body and message in body
    assert count(app, OperationRun) == 0 and queued_jobs(app) == 0


def test_reason_text_is_optional_for_a_single_tenant(app, world):
    client = signed_in(app, *OPS)
    tenant = world["tenants"][0]
    resp = preflight(client, {"kind": "single_tenant", "tenant_id": tenant.id})
    resp, body = confirm(client, resp.headers["Location"], confirmation="RENAME", reason_code="SUPPORT")
    assert resp.status_code == 302
    assert "tenant legacy Northwind 0" in body
    assert run_row(app, int(resp.headers["Location"].split("/")[-1])).tenants_total == 1


def test_reason_text_is_required_for_a_workspace_scope(app, world):
    """SPEC 3: all tenants *and* one workspace need a reason; only one tenant may go without."""
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "workspace", "workspace_id": world["ws"].id}).headers["Location"]
    resp, body = confirm(client, location, confirmation="RENAME", reason_code="SUPPORT", reason_text="")
    assert "(required for this scope)" in body and "(optional)" not in body
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="reason_text-error"' in html
    assert "A reason (at least 5 characters) is required for this scope." in html
    assert count(app, OperationRun) == 0 and audit_rows(app, "platform.ops.runbooks.start") == []
    resp, _ = confirm(client, location, confirmation="RENAME", reason_code="SUPPORT", reason_text="Northwind only")
    assert resp.status_code == 302 and run_row(app, int(resp.headers["Location"].split("/")[-1])).tenants_total == 3


def test_reason_text_is_required_for_a_single_tenant_during_break_glass(app, world):
    client = signed_in(app, *OPS)
    page = client.get("/system/break-glass").get_data(as_text=True)
    assert client.post("/system/break-glass/start", data={"reason": "INC-9 tenant locked out", "minutes": "30",
                                                          "csrf_token": csrf_from(page)}).status_code == 302
    tenant = world["tenants"][0]
    location = preflight(client, {"kind": "single_tenant", "tenant_id": tenant.id}).headers["Location"]
    resp, body = confirm(client, location, confirmation="RENAME", reason_code="SUPPORT")
    assert "(required for this scope and during break-glass)" in body
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="reason_text-error"' in html
    assert "A reason (at least 5 characters) is required for this scope and during break-glass." in html
    assert count(app, OperationRun) == 0 and audit_rows(app, "platform.ops.runbooks.start") == []
    resp, _ = confirm(client, location, confirmation="RENAME", reason_code="SUPPORT", reason_text="INC-9 repair")
    assert resp.status_code == 302
    run = run_row(app, int(resp.headers["Location"].split("/")[-1]))
    assert run.context["break_glass"] is True and run.context["reason_text"] == "INC-9 repair"


def test_no_run_without_a_fresh_preflight_of_ones_own(app, world, monkeypatch):
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "all_tenants"}).headers["Location"]
    # Another operator cannot start from this preflight.
    other = signed_in(app, "system", "nocap@example.test", "nocap-password-1")
    assert other.get(location).status_code == 403  # lacks the runbook capability
    # Sixteen minutes later the preflight is stale.
    import tenantpilot.runbook_starts as ops

    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(ops, "utcnow", lambda: later)
    resp = client.get(location)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/preflight")
    assert "older than 15 minutes" in client.get(resp.headers["Location"]).get_data(as_text=True)
    # And a forged id is not a preflight.
    resp = client.get("/system/ops/runbooks/tests.rename/confirm?preflight=999999")
    assert resp.status_code == 302
    assert count(app, OperationRun) == 0


def test_double_submit_gives_one_run(app, world):
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "all_tenants"}).headers["Location"]
    data = {"confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": "Legacy cleanup"}
    first, _ = confirm(client, location, **data)
    second, _ = confirm(client, location, **data)
    assert first.headers["Location"] == second.headers["Location"]
    assert count(app, OperationRun) == 1
    assert "already queued" in client.get(second.headers["Location"]).get_data(as_text=True)


def test_drifted_preflight_is_refused(app, world, factory):
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "all_tenants"}).headers["Location"]
    factory.tenant(world["ws"], name="legacy late arrival")  # 4 → 5 affected: 25% drift
    resp, _ = confirm(client, location, confirmation="RENAME", reason_code="DATA_REPAIR", reason_text="cleanup")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "found 4 items to change; there are now 5" in body
    assert count(app, OperationRun) == 0


def test_pause_after_the_page_loaded_still_blocks_the_post(app, world):
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "all_tenants"}).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.rename", scope_type="global",
                                                    reason_text="Export vendor incident"))
        db.session.commit()
    resp = client.post("/system/ops/runbooks/tests.rename/confirm", data={
        "csrf_token": csrf_from(page), "preflight": re.search(r'name="preflight" type="hidden" value="(\d+)"', page).group(1),
        "confirmation": "RENAME", "reason_code": "INCIDENT", "reason_text": "try anyway"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert "Legacy rename paused" in body and "Legacy rename is currently paused. Export vendor incident" in body
    assert count(app, OperationRun) == 0 and queued_jobs(app) == 0
    catalog = client.get("/system/ops/runbooks").get_data(as_text=True)
    assert 'data-state="paused"' in catalog and "Export vendor incident" in catalog


def test_tenant_picker_searches_the_allowed_universe_only(app, world):
    client = signed_in(app, *OPS)
    body = client.get("/system/ops/tenant-options?q=legacy").get_data(as_text=True)
    assert "legacy Northwind 0" in body and "legacy Fabrikam" in body
    assert "legacy Archived" not in body
    archived = next(t for t in names(app) if t == "legacy Archived")
    with app.app_context():
        archived_id = db.session.scalar(select(Tenant.id).where(Tenant.name == archived))
    resp = preflight(client, {"kind": "single_tenant", "tenant_id": archived_id})
    assert resp.status_code == 422 and "Choose an active tenant" in resp.get_data(as_text=True)
    resp = preflight(client, {"kind": "workspace", "workspace_id": 0})
    assert resp.status_code == 422 and "Choose a workspace." in resp.get_data(as_text=True)


def test_runs_list_filters_and_keyset_pagination(app, world):
    now = utcnow()
    with app.app_context():
        db.session.execute(insert(OperationRun), [
            {"type": "tests.rename" if i % 2 else "ops.other", "status": "completed",
             "outcome": "failed" if i % 3 == 0 else "succeeded", "run_identity_hash": f"h{i}", "summary_counts": {},
             "failure_summary": [], "context": {}, "created_at": now - timedelta(minutes=i), "tenants_total": 0,
             "tenants_done": 0, "tenants_failed": 0, "tenants_skipped": 0, "cancel_requested": False}
            for i in range(120)])
        db.session.commit()
    client = signed_in(app, *OPS)
    page1 = client.get("/system/ops/runs").get_data(as_text=True)
    ids = [int(x) for x in re.findall(r'data-run="(\d+)"', page1)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="([^"]+)" rel="next"', page1).group(1).replace("&amp;", "&")
    page2_ids = [int(x) for x in re.findall(r'data-run="(\d+)"', client.get(older).get_data(as_text=True))]
    assert len(page2_ids) == 50 and max(page2_ids) < min(ids)
    filtered = client.get("/system/ops/runs?type=tests.rename&outcome=failed").get_data(as_text=True)
    assert len(re.findall(r'data-run="', filtered)) == 20  # odd i divisible by 3
    viewer = app.test_client()
    from tenantpilot.testing import Factory

    Factory(app).platform_user(email="v@example.test", password="viewer-pass-1",
                               capabilities=["platform.access_system_panel", "platform.console.view"])
    login(viewer, "system", "v@example.test", "viewer-pass-1")
    assert viewer.get("/system/ops/runs").status_code == 403


def test_run_detail_cancel_retry_failed_and_csv(app, world, factory, drain):
    for i in range(2):
        factory.tenant(world["ws"], name=f"fail-{i}")
    client = signed_in(app, *OPS)
    location = preflight(client, {"kind": "workspace", "workspace_id": world["ws"].id}).headers["Location"]
    resp, _ = confirm(client, location, confirmation="RENAME", reason_code="DATA_REPAIR", reason_text="cleanup")
    run_url = resp.headers["Location"]
    run_id = int(run_url.split("/")[-1])
    progress = client.get(f"{run_url}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in progress and 'data-status="queued"' in progress
    drain()
    run = run_row(app, run_id)
    assert (run.outcome, run.tenants_failed, run.tenants_total) == ("partially_succeeded", 2, 5)
    assert "every 2s" not in client.get(f"{run_url}/progress").get_data(as_text=True)  # stops polling
    csv_text = client.get(f"{run_url}/tenants.csv").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("Tenant ID,Tenant name,External ID,Tenant status") and len(lines) == 6
    assert sum(",failed,tenant_refused," in line for line in lines) == 2
    page = client.get(run_url).get_data(as_text=True)
    resp = client.post(f"{run_url}/retry-failed", data={"csrf_token": csrf_from(page)})
    retry_id = int(resp.headers["Location"].split("/")[-1])
    retry = run_row(app, retry_id)
    assert retry.parent_run_id == run_id and retry.tenants_total == 2
    assert sorted(tenant_rows(app, retry_id)) == sorted(t for t, (s, _, _) in tenant_rows(app, run_id).items() if s == "failed")
    assert f"Retry of <a href=\"/system/ops/runs/{run_id}\">run #{run_id}</a>" in client.get(resp.headers["Location"]).get_data(as_text=True)
    # Cancel: the retry is still queued, so everything pending is cancelled.
    resp = client.post(f"/system/ops/runs/{retry_id}/cancel", data={"csrf_token": csrf_from(page), "confirmed": "yes"})
    assert resp.status_code == 302
    assert (run_row(app, retry_id).status, run_row(app, retry_id).outcome) == ("completed", "cancelled")
    assert len(audit_rows(app, "platform.ops.runs.cancel")) == 1


def test_circuit_breaker_stops_a_runbook_that_fails_every_tenant(app, factory, drain):
    rename_plugin.ALWAYS_FAIL["on"] = True
    ws = factory.workspace()
    factory.tenants(ws, 60)
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope

    with app.app_context():
        run_id = seam.start("tests.rename", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    drain()
    run = run_row(app, run_id)
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert (run.status, run.outcome) == ("completed", "failed")
    assert run.context["circuit_open"] is True
    assert run.failure_summary[0]["reason_code"] == "circuit_open", run.failure_summary[:3]
    assert 20 <= statuses.count("failed") < 60 and statuses.count("cancelled") == 60 - statuses.count("failed")
    assert run.tenants_done == 60
    [event] = audit_rows(app, "platform.ops.runbooks.failed")
    assert event.meta["circuit_open"] is True


def test_runs_list_tenant_filter_finds_single_and_fan_out_runs(app, world):
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope

    a, b = world["tenants"][0], world["tenants"][3]
    with app.app_context():
        single = seam.start("tests.rename", scope=Scope("single_tenant", tenant_id=a.id), actor=Actor.system(),
                            source="cli").run.id
        ws_run = seam.start("tests.rename", scope=Scope("workspace", workspace_id=world["ws2"].id),
                            actor=Actor.system(), source="cli").run.id
    client = signed_in(app, *OPS)
    ids_a = [int(x) for x in re.findall(r'data-run="(\d+)"', client.get(f"/system/ops/runs?tenant={a.id}").get_data(as_text=True))]
    ids_b = [int(x) for x in re.findall(r'data-run="(\d+)"', client.get(f"/system/ops/runs?tenant={b.id}").get_data(as_text=True))]
    assert ids_a == [single] and ids_b == [ws_run]
    assert re.findall(r'data-run="', client.get(f"/system/ops/runs?tenant={a.id}&before={single}").get_data(as_text=True)) == []


def test_preflight_shows_how_many_tenants_a_workspace_pause_skips(app, world, drain):
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.rename", scope_type="workspace",
                                                    workspace_id=world["ws2"].id, reason_text="Fabrikam freeze"))
        db.session.commit()
    client = signed_in(app, *OPS)
    resp, body = confirm(client, preflight(client, {"kind": "all_tenants"}).headers["Location"],
                         confirmation="RENAME", reason_code="DATA_REPAIR", reason_text="cleanup")
    assert "Tenants skipped (workspace paused)" in body and re.search(r'kpi-value warn">2<', body)
    drain()
    run = run_row(app, int(resp.headers["Location"].split("/")[-1]))
    assert (run.tenants_skipped, run.outcome) == (2, "succeeded")
    assert {r[:2] for t, r in tenant_rows(app, run.id).items() if t in {world["tenants"][3].id, world["tenants"][4].id}} \
        == {("skipped", "paused")}


def test_runbook_run_detail_fragment_updates_with_the_live_progress(make_app, factory, drain, tmp_path):
    """A runbook's run_detail fragment is part of the polled fragment, so its figures are
    current when the run completes (not frozen at the queued state)."""
    from tenantpilot import hookimpl, seam
    from tenantpilot.actors import Actor
    from tenantpilot.api import Runbook
    from tenantpilot.runs import Scope

    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "detail.html").write_text("<p data-fragment>Renamed {{ run.summary_counts.get('updated', 0) }}</p>")

    class WithFragment:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return Runbook(key="tests.fragment", label="Fragment", description="", confirmation_word="GO",
                           capability="platform.runbooks.tests.fragment", preflight=lambda s: {},
                           execute_tenant=lambda job: {"updated": 2}, templates={"run_detail": "detail.html"})

    from jinja2 import ChoiceLoader, FileSystemLoader

    app = make_app(plugins=[("fragment", WithFragment())])
    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(tmp_path / "tpl")), app.jinja_env.loader])
    f = type(factory)(app)
    f.tenants(f.workspace(), 3)
    f.platform_user(email="ops@example.test", password="ops-password-1")
    with app.app_context():
        run_id = seam.start("tests.fragment", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    client = signed_in(app, *OPS)
    assert "Renamed 0" in client.get(f"/system/ops/runs/{run_id}/progress").get_data(as_text=True)
    drain(app)
    assert "Renamed 6" in client.get(f"/system/ops/runs/{run_id}/progress").get_data(as_text=True)


def test_a_confirm_resubmitted_after_its_run_completed_starts_nothing(app, world, drain):
    """The run identity dedups while a run is active; the form's idempotency token covers
    the rest: a refresh of the confirm POST after the run finished starts no second run."""
    client = signed_in(app, *OPS)
    resp = preflight(client, {"kind": "all_tenants"})
    body = client.get(resp.headers["Location"]).get_data(as_text=True)
    fields = {"csrf_token": csrf_from(body),
              "preflight": re.search(r'name="preflight" type="hidden" value="(\d+)"', body).group(1),
              "idempotency_token": re.search(r'name="idempotency_token" value="([^"]+)"', body).group(1),
              "confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": "Legacy names break exports"}
    first = client.post("/system/ops/runbooks/tests.rename/confirm", data=fields)
    assert first.status_code == 302
    drain()
    again = client.post("/system/ops/runbooks/tests.rename/confirm", data=fields)
    assert again.status_code == 302 and again.headers["Location"] == first.headers["Location"]
    assert count(app, OperationRun) == 1 and len(audit_rows(app, "platform.ops.runbooks.start")) == 1
    assert "already submitted" in client.get(again.headers["Location"]).get_data(as_text=True)
