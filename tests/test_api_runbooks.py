"""/system/api/v1/runbooks (issue 15): list → preflight → start gives the same outcome
as the pages for every rule — typed word, reason, stale or foreign preflight, drift,
paused (409 with the reason), dedup, scope busy, missing capability — and the audit rows
and the run name the token."""
import pytest
from sqlalchemy import select

from tenantpilot.extensions import db
from tenantpilot.models import OperationalControlActivation, OperationRun
from tenantpilot.testing import api_client
from tests.helpers import audit_rows, count, queued_jobs, run_row
from tests.support import rename_plugin

OPS_EMAIL = "ops@example.test"
START = {"confirmation": "RENAME", "reason_code": "DATA_REPAIR", "reason_text": "Legacy names break exports"}


@pytest.fixture
def app(make_app):
    rename_plugin.ALWAYS_FAIL["on"] = False
    return make_app(plugins=[rename_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=5)


@pytest.fixture
def world(app, factory):
    ws, ws2 = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    tenants = [factory.tenant(ws, name=f"legacy Northwind {i}") for i in range(3)]
    tenants += [factory.tenant(ws2, name="Fabrikam clean"), factory.tenant(ws2, name="legacy Fabrikam")]
    factory.platform_user(email=OPS_EMAIL)
    factory.platform_user(email="other@example.test")
    return {"ws": ws, "ws2": ws2, "tenants": tenants}


@pytest.fixture
def api(app, world):
    return api_client(app, "system", OPS_EMAIL, name="deploy bot")


def preflight(api, scope=None):
    resp = api.post("/system/api/v1/runbooks/tests.rename/preflight", json={"scope": scope or {"kind": "all_tenants"}})
    assert resp.status_code == 201, resp.json
    return resp.json


def start(api, pf_id, **overrides):
    return api.post("/system/api/v1/runbooks/tests.rename/start", json={"preflight_id": pf_id, **START, **overrides})


def test_list_shows_runbooks_with_their_control_state(app, api):
    resp = api.get("/system/api/v1/runbooks")
    [rb] = resp.json["runbooks"]
    assert rb["key"] == "tests.rename" and rb["confirmation_word"] == "RENAME"
    assert rb["control"] == {"key": "tests.rename", "label": "Legacy rename", "state": "enabled", "paused": False,
                             "reason": None, "paused_workspace_ids": []}
    assert rb["reason_required_scopes"] == ["all_tenants", "workspace"]


def test_preflight_start_and_run_name_the_token(app, api, drain):
    pf = preflight(api)
    assert pf["result"]["affected_count"] == 4 and pf["scope_label"] == "all tenants" and not pf["nothing_to_do"]
    [event] = audit_rows(app, "platform.ops.runbooks.preflight")
    assert event.id == pf["preflight_id"] and event.meta["api_token"]["name"] == "deploy bot"
    resp = start(api, pf["preflight_id"])
    assert resp.status_code == 201 and resp.json["status"] == "started"
    run = run_row(app, resp.json["run"]["id"])
    assert run.context["source"] == "api" and run.context["preflight_audit_id"] == pf["preflight_id"]
    assert run.context["initiator"]["api_token"]["id"] == api.token_id
    [started] = audit_rows(app, "platform.ops.runbooks.start")
    assert started.meta["api_token"]["id"] == api.token_id and started.meta["source"] == "api"
    assert started.target_id == str(run.id)
    drain()
    assert (run_row(app, run.id).status, run_row(app, run.id).outcome) == ("completed", "succeeded")


@pytest.mark.parametrize("body, field, message", [
    ({"confirmation": "rename"}, "confirmation", "Type RENAME exactly to confirm."),
    ({"reason_text": ""}, "reason_text", "A reason (at least 5 characters) is required for this scope."),
    ({"reason_code": ""}, "reason_code", "Must be one of"),
    ({"reason_code": "BECAUSE"}, "reason_code", "Must be one of"),
    ({"reason_text": "nul\x00byte"}, "reason_text", "control characters"),
    ({"preflight_id": 2**31}, "preflight_id", "Must be greater than or equal to 1 and less than or equal to"),
    ({"preflight_id": "\u0661\u0662"}, "preflight_id", "Not a valid integer."),
    ({"preflight_id": 999999}, "preflight_id", "Run a preflight first"),
])
def test_bad_starts_are_422_naming_the_field(app, api, body, field, message):
    pf = preflight(api)
    resp = start(api, pf["preflight_id"], **body)
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert resp.json["type"] == "urn:tenantpilot:problem:validation"
    assert any(message in m for m in resp.json["errors"][field]), resp.json
    assert count(app, OperationRun) == 0 and queued_jobs(app) == 0


def test_malformed_bodies_are_4xx_never_500(app, api):
    url = "/system/api/v1/runbooks/tests.rename/preflight"
    assert api.post(url, data="not json", content_type="application/json").status_code == 400
    assert api.post(url, json={"scope": {"kind": "single_tenant"}}).json["errors"] == {
        "scope.tenant_id": ["Choose an active tenant from the search results."]}
    assert api.post(url, json={"scope": {"kind": "workspace", "workspace_id": 2**31 - 1}}).status_code == 422
    assert api.post(url, json={"scope": {"kind": "everything"}}).status_code == 422
    assert api.post(url, json={"scope": {"kind": "all_tenants"}, "extra": 1}).status_code == 422
    assert api.post("/system/api/v1/runbooks/no.such/preflight", json={"scope": {"kind": "all_tenants"}}).status_code == 404
    assert api.get("/system/api/v1/runbooks/tests.rename/start").status_code == 405
    huge = api.post(url, json={"scope": {"kind": "all_tenants"}, "pad": "x" * (2 * 1024 * 1024)})
    assert huge.status_code == 413 and huge.json["type"] == "urn:tenantpilot:problem:too-large"
    assert audit_rows(app, "platform.ops.runbooks.preflight") == []


def test_someone_elses_or_a_stale_preflight_starts_nothing(app, api, world, clock):
    other = api_client(app, "system", "other@example.test")
    pf = preflight(api)
    resp = start(other, pf["preflight_id"])
    assert resp.status_code == 422 and "Run a preflight first" in resp.json["errors"]["preflight_id"][0]
    clock.advance(minutes=16)
    resp = start(api, pf["preflight_id"])
    assert resp.status_code == 422 and "older than 15 minutes" in resp.json["errors"]["preflight_id"][0]
    assert count(app, OperationRun) == 0


def test_drift_is_refused_like_the_page(app, api, world, factory):
    pf = preflight(api)
    factory.tenant(world["ws"], name="legacy late arrival")  # 4 → 5 affected: 25% drift
    resp = start(api, pf["preflight_id"])
    assert resp.status_code == 409 and resp.json["type"] == "urn:tenantpilot:problem:drift"
    assert "found 4 items to change; there are now 5" in resp.json["detail"]
    assert count(app, OperationRun) == 0


def test_paused_is_409_with_title_and_reason_and_audited(app, api):
    pf = preflight(api)
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.rename", scope_type="global",
                                                    reason_text="Export vendor incident"))
        db.session.commit()
    resp = start(api, pf["preflight_id"])
    assert resp.status_code == 409 and resp.json["type"] == "urn:tenantpilot:problem:paused"
    assert resp.json["title"] == "Legacy rename paused"
    assert resp.json["detail"] == "Legacy rename is currently paused. Export vendor incident"
    assert resp.json["reason"] == "Export vendor incident" and resp.json["control_key"] == "tests.rename"
    assert count(app, OperationRun) == 0 and queued_jobs(app) == 0
    [blocked] = audit_rows(app, "operational_control.execution_blocked")
    assert blocked.meta["source"] == "api" and blocked.meta["api_token"]["id"] == api.token_id
    assert api.get("/system/api/v1/runbooks").json["runbooks"][0]["control"]["state"] == "paused"


def test_dedup_scope_busy_and_idempotency_key(app, api, world):
    first = start(api, preflight(api)["preflight_id"])
    again = start(api, preflight(api)["preflight_id"])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["status"] == "deduped" and again.json["run"]["id"] == first.json["run"]["id"]
    assert "already queued" in again.json["message"]
    # A workspace run is another scope: it starts beside the all-tenants one (the lock is
    # on all-tenants runs only).
    ws_run = start(api, preflight(api, {"kind": "workspace", "workspace_id": world["ws"].id})["preflight_id"])
    assert ws_run.status_code == 201 and ws_run.json["run"]["scope"] == "workspace"
    assert count(app, OperationRun, OperationRun.scope_lock.isnot(None)) == 1
    # A retried request with the same Idempotency-Key is answered with the first one's run.
    pf = preflight(api, {"kind": "single_tenant", "tenant_id": world["tenants"][0].id})
    key = {"Idempotency-Key": "retry-7f3a"}
    one = api.post("/system/api/v1/runbooks/tests.rename/start", json={"preflight_id": pf["preflight_id"], **START},
                   headers=key)
    two = api.post("/system/api/v1/runbooks/tests.rename/start", json={"preflight_id": pf["preflight_id"], **START},
                   headers=key)
    assert one.status_code == 201 and two.status_code == 200 and two.json["run"]["id"] == one.json["run"]["id"]
    with app.app_context():
        assert db.session.scalar(select(OperationRun.id).where(OperationRun.tenant_id == world["tenants"][0].id))


def test_a_second_all_tenants_start_answers_with_the_active_run(app, api, world):
    first = start(api, preflight(api)["preflight_id"])
    # Another reason does not make another run: the identity is the type and the scope.
    second = start(api, preflight(api)["preflight_id"], reason_code="INCIDENT", reason_text="Second attempt")
    assert second.status_code == 200 and second.json["status"] == "deduped"
    assert second.json["run"]["id"] == first.json["run"]["id"] and count(app, OperationRun) == 1


def test_missing_capability_is_403_before_anything_runs(app, world):
    narrow = api_client(app, "system", OPS_EMAIL, capabilities=[
        "platform.access_system_panel", "platform.runbooks.view", "platform.runbooks.run"])
    assert narrow.get("/system/api/v1/runbooks").json["runbooks"] == []  # not the runbook's own capability
    resp = narrow.post("/system/api/v1/runbooks/tests.rename/preflight", json={"scope": {"kind": "all_tenants"}})
    assert resp.status_code == 403 and "platform.runbooks.tests.rename" in resp.json["detail"]
    assert audit_rows(app, "platform.ops.runbooks.preflight") == []
    assert audit_rows(app, "platform.api_token.denied")[0].meta["reason"] == "missing_capability"
