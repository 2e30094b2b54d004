"""/system/api/v1: runs, controls, audit and telemetry — the same services as their pages,
with tokens, problem documents, keyset cursors and hostile input."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationalControlActivation, OperationRun
from tenantpilot.testing import api_client, post_form, signed_in
from tenantpilot.timeutil import utcnow
from tests.helpers import audit_rows, count, run_row, tenant_rows
from tests.support import rename_plugin

API = "/system/api/v1"
OPS = "ops@example.test"
KEY = "tests.rename"
NOT_FOUND = "urn:tenantpilot:problem:not-found"
PANEL = "platform.access_system_panel"


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
    ops = factory.platform_user(email=OPS, password="ops-password-1")
    return {"ws": ws, "ws2": ws2, "tenants": tenants, "ops": ops}


@pytest.fixture
def api(app, world):
    return api_client(app, "system", OPS)


def problem_of(resp, status: int, slug: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status
    if slug:
        assert body["type"] == f"urn:tenantpilot:problem:{slug}"
    return body


def conforms(schema, data) -> None:
    """The answer matches its declared schema: no missing, unknown or mistyped field."""
    assert schema().validate(data) == {}, schema().validate(data)


def start_run(app, kind="workspace", **scope):
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope

    with app.app_context():
        return seam.start(KEY, scope=Scope(kind, **scope), actor=Actor.system(), source="cli",
                          context={"reason_code": "DATA_REPAIR", "reason_text": "cleanup"}).run.id


def failed_run(app, world, factory, drain) -> int:
    """A completed workspace run with 2 failed tenants out of 5."""
    for i in range(2):
        factory.tenant(world["ws"], name=f"fail-{i}")
    run_id = start_run(app, workspace_id=world["ws"].id)
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome, run.tenants_failed, run.tenants_total) == ("completed", "partially_succeeded", 2, 5)
    return run_id


def bulk_runs(app, n=120):
    now = utcnow()
    with app.app_context():
        db.session.execute(insert(OperationRun), [
            {"type": KEY if i % 2 else "ops.other", "status": "completed",
             "outcome": "failed" if i % 3 == 0 else "succeeded", "run_identity_hash": f"h{i}", "summary_counts": {},
             "failure_summary": [], "context": {}, "created_at": now - timedelta(minutes=i), "tenants_total": 0,
             "tenants_done": 0, "tenants_failed": 0, "tenants_skipped": 0, "cancel_requested": False}
            for i in range(n)])
        db.session.commit()


# --- runs ------------------------------------------------------------------------------------


def test_runs_list_pages_by_cursor_and_filters_like_the_page(app, world, api):
    from tenantpilot.web.api_runs import RunListSchema

    bulk_runs(app)
    first = api.get(f"{API}/runs")
    assert first.status_code == 200
    conforms(RunListSchema, first.get_json())
    ids = [r["id"] for r in first.get_json()["runs"]]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    second = api.get(f"{API}/runs", query_string={"cursor": first.get_json()["next_cursor"]}).get_json()
    assert len(second["runs"]) == 50 and max(r["id"] for r in second["runs"]) < min(ids)
    third = api.get(f"{API}/runs", query_string={"cursor": second["next_cursor"]}).get_json()
    assert len(third["runs"]) == 20 and third["next_cursor"] is None
    assert api.get(f"{API}/runs?limit=200").get_json()["next_cursor"] is None
    # The same filter lists the same runs as the page.
    filtered = api.get(f"{API}/runs?type={KEY}&outcome=failed&limit=200").get_json()["runs"]
    page = signed_in(app, "system", OPS, "ops-password-1").get(f"/system/ops/runs?type={KEY}&outcome=failed")
    assert [r["id"] for r in filtered] == [int(x) for x in re.findall(r'data-run="(\d+)"', page.get_data(as_text=True))]
    assert len(filtered) == 20 and all(r["operation_type"] == KEY and r["outcome"] == "failed" for r in filtered)


def test_runs_list_by_tenant_and_workspace_name(app, world, api):
    a = world["tenants"][0]
    single = start_run(app, "single_tenant", tenant_id=a.id)
    ws_run = start_run(app, workspace_id=world["ws2"].id)
    assert [r["id"] for r in api.get(f"{API}/runs?tenant={a.id}").get_json()["runs"]] == [single]
    assert [r["id"] for r in api.get(f"{API}/runs?tenant_name=Fabrikam clean").get_json()["runs"]] == [ws_run]
    assert [r["id"] for r in api.get(f"{API}/runs?workspace_name=Fabrikam").get_json()["runs"]] == [ws_run]
    # A name that matches nothing lists nothing (the page says "No tenant matches").
    nothing = api.get(f"{API}/runs?tenant_name=Contoso")
    assert nothing.status_code == 200 and nothing.get_json() == {"runs": [], "next_cursor": None}


@pytest.mark.parametrize("query, status", [
    ("limit=999999999999", 422), ("limit=0", 422), ("limit=%D9%A1%D9%A2", 422), ("tenant=%D9%A1%D9%A2", 422),
    ("tenant=99999999999", 422), ("status=exploded", 422), ("window=1y", 422),
    ("cursor=nonsense", 400), ("cursor=%D9%A1%D9%A2", 400), ("cursor=azE6MA", 400),  # "k1:0"
    ("tenant_name=abc%00def", 400), ("cursor=a%00b", 400),
])
def test_runs_list_refuses_hostile_queries_with_a_problem(app, world, api, query, status):
    problem_of(api.get(f"{API}/runs?{query}"), status)


def test_run_detail_and_tenant_results(app, world, factory, drain, api):
    from tenantpilot.web.api_runs import RunDetailSchema, TenantListSchema

    run_id = failed_run(app, world, factory, drain)
    resp = api.get(f"{API}/runs/{run_id}")
    assert resp.status_code == 200
    detail = resp.get_json()
    conforms(RunDetailSchema, detail)
    assert (detail["id"], detail["status"], detail["outcome"], detail["progress_percent"]) == \
        (run_id, "completed", "partially_succeeded", 100)
    assert detail["tenants_failed"] == 2 and detail["summary_counts"]["updated"] == 3
    assert detail["failure_summary"] and detail["failure_summary"][0]["reason_code"] == "tenant_refused"
    assert detail["initiator"]["type"] == "system" and detail["reason_code"] == "DATA_REPAIR"
    assert detail["reason_text"] == "cleanup" and detail["parent_run_id"] is None and detail["cancel_requested"] is False
    assert detail["scope"] == "workspace" and detail["workspace_id"] == world["ws"].id

    everything = api.get(f"{API}/runs/{run_id}/tenants").get_json()
    conforms(TenantListSchema, everything)
    assert len(everything["tenants"]) == 5 and everything["next_cursor"] is None
    expected = tenant_rows(app, run_id)
    assert {t["tenant_id"]: t["status"] for t in everything["tenants"]} == {k: v[0] for k, v in expected.items()}
    failed = api.get(f"{API}/runs/{run_id}/tenants?status=failed").get_json()["tenants"]
    assert len(failed) == 2 and all(t["tenant_name"].startswith("fail-") for t in failed)
    assert all(t["reason_code"] == "tenant_refused" and t["error"] == "The tenant refused the change." for t in failed)
    assert all(t["error"] is None for t in everything["tenants"] if t["status"] != "failed")
    # Keyset pages of two: every tenant once, in tenant id order.
    seen, cursor = [], None
    while True:
        page = api.get(f"{API}/runs/{run_id}/tenants", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = page.get_json()
        seen += [t["tenant_id"] for t in body["tenants"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(expected)
    problem_of(api.get(f"{API}/runs/{run_id}/tenants?status=bogus"), 422)
    problem_of(api.get(f"{API}/runs/{run_id}/tenants?limit=999999999999"), 422)


def test_retry_failed_then_cancel_through_the_api_audited_with_the_token(app, world, factory, drain, api):
    from tenantpilot.web.api_runs import RunDetailSchema

    run_id = failed_run(app, world, factory, drain)
    resp = api.post(f"{API}/runs/{run_id}/retry-failed")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "started"
    retry_id = body["run"]["id"]
    retry = run_row(app, retry_id)
    assert retry.parent_run_id == run_id and retry.tenants_total == 2 and retry.context["source"] == "api"
    assert retry.context["initiator"]["api_token"]["id"] == api.token_id
    assert sorted(tenant_rows(app, retry_id)) == sorted(t for t, (s, _, _) in tenant_rows(app, run_id).items()
                                                        if s == "failed")
    [retried] = audit_rows(app, "platform.ops.runs.retry_failed")
    assert retried.target_id == str(retry_id) and retried.meta["api_token"]["id"] == api.token_id
    assert retried.meta["parent_run_id"] == run_id and retried.meta["tenants"] == 2

    # The retry is still queued: cancel cancels every pending tenant, audited as the page does.
    cancelled = api.post(f"{API}/runs/{retry_id}/cancel")
    assert cancelled.status_code == 200
    conforms(RunDetailSchema, cancelled.get_json())
    assert (cancelled.get_json()["status"], cancelled.get_json()["outcome"]) == ("completed", "cancelled")
    assert cancelled.get_json()["cancel_requested"] is True and cancelled.get_json()["parent_run_id"] == run_id
    [event] = audit_rows(app, "platform.ops.runs.cancel")
    assert event.target_id == str(retry_id) and event.meta["api_token"]["id"] == api.token_id
    assert event.actor_type == "platform" and event.summary == f"Cancelled run #{retry_id}"

    # Finished runs: cancel → 409 run-finished, nothing audited (the page flashes the same).
    again = problem_of(api.post(f"{API}/runs/{retry_id}/cancel"), 409, "run-finished")
    assert again["run_id"] == retry_id and "already completed" in again["detail"]
    assert len(audit_rows(app, "platform.ops.runs.cancel")) == 1
    # Nothing failed in the cancelled retry → 409 nothing-to-retry, no run.
    runs_before = count(app, OperationRun)
    problem_of(api.post(f"{API}/runs/{retry_id}/retry-failed"), 409, "nothing-to-retry")
    assert count(app, OperationRun) == runs_before and len(audit_rows(app, "platform.ops.runs.retry_failed")) == 1


def test_retry_failed_while_paused_is_a_409_paused(app, world, factory, drain, api):
    run_id = failed_run(app, world, factory, drain)
    assert api.post(f"{API}/controls/{KEY}/pause", json={"scope_type": "global", "reason": "incident 42"}).status_code == 201
    runs_before = count(app, OperationRun)
    body = problem_of(api.post(f"{API}/runs/{run_id}/retry-failed"), 409, "paused")
    assert body["control_key"] == KEY and body["reason"] == "incident 42"
    assert count(app, OperationRun) == runs_before and audit_rows(app, "platform.ops.runs.retry_failed") == []


def test_a_run_still_running_cannot_be_retried_like_on_the_page(app, world, api):
    run_id = start_run(app, workspace_id=world["ws"].id)  # queued, not drained
    problem_of(api.post(f"{API}/runs/{run_id}/retry-failed"), 409, "nothing-to-retry")
    client = signed_in(app, "system", OPS, "ops-password-1")
    page = post_form(client, f"/system/ops/runs/{run_id}/retry-failed", page=f"/system/ops/runs/{run_id}",
                     follow_redirects=True)
    assert "Only a completed run with failed tenants can be retried." in page.get_data(as_text=True)


# --- not found, capabilities, ids ---------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("get", "/runs/999999"), ("get", "/runs/999999/tenants"), ("post", "/runs/999999/cancel"),
    ("post", "/runs/999999/retry-failed"), ("get", "/runs/99999999999"), ("get", "/runs/%D9%A1%D9%A2"),
    ("post", "/runs/%D9%A1%D9%A2/cancel"), ("get", "/controls/no.such.key"),
    ("get", "/controls/no.such.key/impact?scope_type=global"),
    ("post", "/controls/no.such.key/pause"), ("post", "/controls/no.such.key/resume"),
])
def test_unknown_ids_are_404_problems(app, world, api, method, path):
    body = {"scope_type": "global", **({"reason": "a valid reason"} if path.endswith("/pause") else {})} \
        if method == "post" else None
    resp = getattr(api, method)(API + path, json=body)
    assert problem_of(resp, 404)["type"] == NOT_FOUND


READ_ALL = [PANEL, "platform.ops.view", "platform.runbooks.view", "platform.console.view"]


@pytest.mark.parametrize("method, path, caps", [
    ("get", "/runs", [PANEL, "platform.console.view"]),
    ("get", "/runs/{run}", [PANEL, "platform.console.view"]),
    ("get", "/runs/{run}/tenants", [PANEL, "platform.console.view"]),
    ("post", "/runs/{run}/cancel", READ_ALL),  # the owner may run runbooks; the token may not
    ("post", "/runs/{run}/retry-failed", READ_ALL),
    ("get", "/controls", READ_ALL),
    ("get", f"/controls/{KEY}/impact?scope_type=global", READ_ALL),
    ("post", f"/controls/{KEY}/pause", READ_ALL),
    ("post", f"/controls/{KEY}/resume", READ_ALL),
    ("get", "/audit", READ_ALL),
    ("get", "/telemetry/summary", [PANEL, "platform.ops.view"]),
])
def test_a_token_without_the_capability_gets_403_and_a_denied_row(app, world, method, path, caps):
    run_id = start_run(app, workspace_id=world["ws"].id)
    narrow = api_client(app, "system", OPS, capabilities=caps, name="narrow")
    before_runs, before_pauses = count(app, OperationRun), count(app, OperationalControlActivation)
    body = {"scope_type": "global", **({"reason": "a valid reason"} if path.endswith("/pause") else {})} \
        if method == "post" else None
    resp = getattr(narrow, method)(API + path.format(run=run_id), json=body)
    assert problem_of(resp, 403, "forbidden")
    [denied] = audit_rows(app, "platform.api_token.denied")
    assert denied.meta["api_token"]["id"] == narrow.token_id and denied.meta["reason"] == "missing_capability"
    assert denied.meta["method"] == method.upper() and denied.status == "blocked"
    assert count(app, OperationRun) == before_runs and count(app, OperationalControlActivation) == before_pauses
    assert run_row(app, run_id).status == "queued" and audit_rows(app, "platform.ops.runs.cancel") == []


# --- controls ------------------------------------------------------------------------------


def test_controls_list_impact_pause_update_resume(app, world, api):
    from tenantpilot.web.api_controls import ControlListSchema, ImpactSchema, PauseOutcomeSchema, ResumeOutcomeSchema

    listed = api.get(f"{API}/controls").get_json()
    conforms(ControlListSchema, listed)
    [control] = [c for c in listed["controls"] if c["key"] == KEY]
    assert (control["label"], control["state"], control["pauses"]) == ("Legacy rename", "enabled", [])
    assert KEY in control["operation_types"]

    impact = api.get(f"{API}/controls/{KEY}/impact?scope_type=global").get_json()
    conforms(ImpactSchema, impact)
    assert (impact["workspaces"], impact["tenants"], impact["active_runs"], impact["already_paused"]) == (2, 5, 0, False)
    ws_impact = api.get(f"{API}/controls/{KEY}/impact?scope_type=workspace&workspace_id={world['ws'].id}").get_json()
    assert (ws_impact["workspace_name"], ws_impact["workspaces"], ws_impact["tenants"]) == ("Northwind", 1, 3)
    missing = problem_of(api.get(f"{API}/controls/{KEY}/impact?scope_type=workspace"), 422, "validation")
    assert "workspace_id" in missing["errors"]

    expires = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    resp = api.post(f"{API}/controls/{KEY}/pause", json={
        "scope_type": "global", "reason": "  incident 4711  ", "expires_at": expires.isoformat() + "-02:00"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    conforms(PauseOutcomeSchema, resp.get_json())
    paused = resp.get_json()
    assert paused["outcome"] == "paused" and paused["control"]["state"] == "paused"
    [pause] = paused["control"]["pauses"]
    assert pause["scope_type"] == "global" and pause["reason"] == "incident 4711" and pause["paused_by"] == world["ops"].name
    # "-02:00" is two hours behind UTC: stored (and answered) as UTC.
    assert pause["expires_at"] == (expires + timedelta(hours=2)).isoformat() + "+00:00"
    [event] = audit_rows(app, "operational_control.paused")
    assert event.meta["api_token"]["id"] == api.token_id and event.meta["reason"] == "incident 4711"
    assert event.workspace_id is None and event.actor_type == "platform"
    assert api.get(f"{API}/controls/{KEY}/impact?scope_type=global").get_json()["already_paused"] is True

    updated = api.post(f"{API}/controls/{KEY}/pause", json={"scope_type": "global", "reason": "incident 4712",
                                                             "expires_at": None})
    assert updated.status_code == 201 and updated.get_json()["outcome"] == "updated"
    assert updated.get_json()["control"]["pauses"][0]["expires_at"] is None
    [event] = audit_rows(app, "operational_control.updated")
    assert event.meta["api_token"]["id"] == api.token_id and event.meta["previous_reason"] == "incident 4711"
    assert count(app, OperationalControlActivation) == 1

    resumed = api.post(f"{API}/controls/{KEY}/resume", json={"scope_type": "global"})
    assert resumed.status_code == 200
    conforms(ResumeOutcomeSchema, resumed.get_json())
    assert resumed.get_json()["outcome"] == "resumed" and resumed.get_json()["control"]["state"] == "enabled"
    [event] = audit_rows(app, "operational_control.resumed")
    assert event.meta["api_token"]["id"] == api.token_id
    assert count(app, OperationalControlActivation) == 0
    # Not paused: nothing changes and nothing is audited (the page says "already enabled").
    again = api.post(f"{API}/controls/{KEY}/resume", json={"scope_type": "global"})
    assert again.status_code == 200 and again.get_json()["outcome"] == "already_enabled"
    assert len(audit_rows(app, "operational_control.resumed")) == 1


def test_workspace_pause_names_the_workspace(app, world, api):
    resp = api.post(f"{API}/controls/{KEY}/pause",
                    json={"scope_type": "workspace", "workspace_id": world["ws2"].id, "reason": "tenant migration"})
    assert resp.status_code == 201
    control = resp.get_json()["control"]
    assert control["state"] == "workspace_paused" and control["state_label"] == "Workspace pauses active (1)"
    assert control["pauses"][0]["workspace_id"] == world["ws2"].id
    assert control["pauses"][0]["workspace_name"] == "Fabrikam"
    [event] = audit_rows(app, "operational_control.paused")
    assert event.workspace_id == world["ws2"].id and event.meta["api_token"]["id"] == api.token_id


@pytest.mark.parametrize("body, field", [
    ({"scope_type": "global", "reason": "no"}, "reason"),
    ({"scope_type": "global", "reason": "   x    "}, "reason"),
    ({"scope_type": "global", "reason": "x" * 501}, "reason"),
    ({"scope_type": "global", "reason": "bad\x00reason"}, "reason"),
    ({"scope_type": "global"}, "reason"),
    ({"scope_type": "planet", "reason": "valid reason"}, "scope_type"),
    ({"scope_type": "workspace", "reason": "valid reason"}, "workspace_id"),
    ({"scope_type": "workspace", "workspace_id": 999999, "reason": "valid reason"}, "workspace_id"),
    ({"scope_type": "workspace", "workspace_id": "1", "reason": "valid reason"}, "workspace_id"),
    ({"scope_type": "workspace", "workspace_id": 99999999999, "reason": "valid reason"}, "workspace_id"),
    ({"scope_type": "global", "reason": "valid reason", "expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
    ({"scope_type": "global", "reason": "valid reason", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
    ({"scope_type": "global", "reason": "valid reason", "expires_at": "tomorrow"}, "expires_at"),
])
def test_pause_validation_errors_name_the_field_and_write_nothing(app, world, api, body, field):
    problem = problem_of(api.post(f"{API}/controls/{KEY}/pause", json=body), 422, "validation")
    assert field in problem["errors"], problem
    assert count(app, OperationalControlActivation) == 0 and count(app, AuditLog, AuditLog.action.like("operational_control.%")) == 0


def test_pause_reason_error_is_the_pages_message(app, world, api):
    problem = problem_of(api.post(f"{API}/controls/{KEY}/pause", json={"scope_type": "global", "reason": "no"}), 422)
    [message] = problem["errors"]["reason"]
    assert message == "The reason must be 5 to 500 characters (it has 2)."
    client = signed_in(app, "system", OPS, "ops-password-1")
    page = post_form(client, f"/system/ops/controls/{KEY}/pause/confirm",
                     {"scope_type": "global", "workspace_id": "", "reason": "no", "expires_at": ""},
                     page="/system/ops/controls")
    assert page.status_code == 422 and message in page.get_data(as_text=True)


def test_resume_validation_and_bodies(app, world, api):
    assert "workspace_id" in problem_of(api.post(f"{API}/controls/{KEY}/resume", json={"scope_type": "workspace"}),
                                        422)["errors"]
    assert "scope_type" in problem_of(api.post(f"{API}/controls/{KEY}/resume", json={}), 422)["errors"]
    wrong_type = problem_of(api.post(f"{API}/controls/{KEY}/resume", data="not json", content_type="text/plain"), 415)
    assert wrong_type["type"] == "urn:tenantpilot:problem:unsupported-media-type"
    problem_of(api.post(f"{API}/controls/{KEY}/resume", data="{", content_type="application/json"), 400)
    assert audit_rows(app, "operational_control.resumed") == []


# --- audit ---------------------------------------------------------------------------------


def test_audit_list_filters_pages_and_hides_emails(app, world, api):
    from tenantpilot.web.api_audit import AuditListSchema

    for reason in ("first pause", "second pause", "third pause"):
        assert api.post(f"{API}/controls/{KEY}/pause", json={"scope_type": "global", "reason": reason}).status_code == 201
    resp = api.get(f"{API}/audit?action=operational_control")
    assert resp.status_code == 200
    conforms(AuditListSchema, resp.get_json())
    events = resp.get_json()["events"]
    assert [e["action"] for e in events] == ["operational_control.updated", "operational_control.updated",
                                             "operational_control.paused"]
    assert events[0]["metadata"]["reason"] == "third pause" and events[0]["actor_name"] == world["ops"].name
    assert events[0]["metadata"]["api_token"]["id"] == api.token_id
    assert "actor_email" not in events[0] and "ip" not in events[0] and OPS not in resp.get_data(as_text=True)
    # Keyset pages of one, newest first, each event once.
    seen, cursor = [], None
    for _ in range(5):
        body = api.get(f"{API}/audit", query_string={"action": "operational_control", "limit": 1,
                                                     **({"cursor": cursor} if cursor else {})}).get_json()
        seen += [e["id"] for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in events]
    # Filters as on the page: target, status, actor type.
    run_events = api.get(f"{API}/audit?target_type=operational_control&target_id={KEY}&status=success").get_json()
    assert len(run_events["events"]) == 3
    assert api.get(f"{API}/audit?actor_type=system&action=operational_control").get_json()["events"] == []


@pytest.mark.parametrize("query, status, text", [
    ("actor_type=robot", 400, "Actor type must be one of"),
    ("workspace=%D9%A1%D9%A2", 400, "Workspace must be a positive whole number"),
    ("window=1y", 400, "Window must be one of"),
    ("target_id=12", 400, "Target id needs a target type"),
    ("action=bad%20action", 400, "Action must be an action id"),
    ("tenant_name=Contoso", 400, "No tenant matches"),
    ("cursor=nonsense", 400, "not one this API gave out"),
    ("cursor=azE6OTk5OTk5", 400, "points at no audit event"),  # "k1:999999"
    ("actor=a%00b", 400, ""),
    ("limit=999999999999", 422, ""),
])
def test_audit_filter_errors_are_problems_with_the_pages_messages(app, world, api, query, status, text):
    body = problem_of(api.get(f"{API}/audit?{query}"), status)
    assert text in body["detail"]


# --- telemetry -----------------------------------------------------------------------------


def test_telemetry_summary_counts_the_window(app, world, api, clock):
    from tenantpilot import telemetry
    from tenantpilot.web.api_audit import TelemetrySummarySchema

    t = world["tenants"]
    with app.app_context():
        for tenant, ago in ((t[0], 1), (t[1], 2), (t[3], 30), (t[3], 24 * 10)):
            assert telemetry.record("product.operations.started", workspace_id=tenant.workspace_id,
                                    tenant_id=tenant.id, metadata={"operation_type": KEY},
                                    occurred_at=clock() - timedelta(hours=ago))
    day = api.get(f"{API}/telemetry/summary")
    assert day.status_code == 200
    conforms(TelemetrySummarySchema, day.get_json())
    body = day.get_json()
    [family] = [f for f in body["families"] if f["name"] == "product.operations.started"]
    assert (body["window"], family["count"], body["active_workspaces"]) == ("24h", 2, 1)
    assert sum(family["trend"]) == 2 and body["trend_bucket_seconds"] == 3600
    week = api.get(f"{API}/telemetry/summary?window=7d").get_json()
    month = api.get(f"{API}/telemetry/summary?window=30d").get_json()
    assert [f["count"] for f in week["families"] if f["name"] == family["name"]] == [3]
    assert (month["total"], month["active_workspaces"]) == (4, 2)
    with app.app_context():
        assert month["total"] == telemetry.summary("30d").total
    assert body["runs"]["started"] == 0 and "@" not in day.get_data(as_text=True)
    problem_of(api.get(f"{API}/telemetry/summary?window=1y"), 422)
    problem_of(api.get(f"{API}/telemetry/summary?window=%00"), 400)


def test_api_answers_only_to_a_token(app, world):
    resp = signed_in(app, "system", OPS, "ops-password-1").get(f"{API}/runs")
    problem_of(resp, 401, "unauthorized")
    with app.app_context():
        assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "platform.api_token.denied")) is None
