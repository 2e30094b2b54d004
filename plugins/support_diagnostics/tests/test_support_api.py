"""The support diagnostics API (POST /admin/api/v1/tenants/<tenant>/support-diagnostics):
the page's action as JSON — the same sanitized bundle, one audit and one telemetry event
per call (naming the token), and the page's 404/403 rules."""
import json

import pytest
from sqlalchemy import delete

from support_helpers import AUDIT_ACTION, LEAKY_MESSAGE, add_run, audit_dicts, event_dicts
from test_support_diagnostics import (SECRET, SECRET_ENV, SETTING, TENANT_NAME, USER_NAME, WORKSPACE_NAME,
                                      VaultProvider)
from tenantpilot.sdk import Membership, db
from tenantpilot.testing import api_client
from tenantpilot_findings import plugin as findings
from tenantpilot_simulated import plugin as simulated
from tenantpilot_support import plugin
from tests.helpers import audit_rows

PROBLEM = "urn:tenantpilot:problem:"


@pytest.fixture
def app(make_app, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return make_app(plugins=[plugin, findings, simulated, ("vault_probe", VaultProvider())])


@pytest.fixture
def world(app, factory):
    from support_helpers import add_findings, connect, rename_user

    ws, other = factory.workspace(WORKSPACE_NAME), factory.workspace()
    tenant = factory.tenant(ws, name=TENANT_NAME)
    other_tenant = factory.tenant(other, name="Elsewhere")
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(other, "owner")])
    rename_user(app, users["operator"], USER_NAME)
    connect(app, tenant, "vault_probe", settings={"api_base": SETTING}, secret_ref=f"env:{SECRET_ENV}")
    run_id = add_run(app, tenant, initiator=users["operator"], failures=[("auth_failed", LEAKY_MESSAGE)])
    foreign_run = add_run(app, other_tenant)
    add_findings(app, tenant, ("critical", "new", "Mail forwarded to exfil@evil.example"),
                 ("high", "open", "Stale admin"), ("low", "resolved", "Fixed thing"))
    return tenant, users, run_id, foreign_run


def client(app, role, **kw):
    return api_client(app, "admin", f"{role}@example.test", **kw)


def url(tenant):
    return f"/admin/api/v1/tenants/{tenant.id}/support-diagnostics"


def assert_problem(resp, status, slug):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == PROBLEM + slug and body["status"] == status
    return body


def test_the_bundle_as_json_with_one_audit_and_one_telemetry_event(app, world):
    tenant, users, run_id, _ = world
    api = client(app, "operator")
    resp = api.post(url(tenant), json={})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["tenant"]["id"] == tenant.id and body["tenant"]["status"] == "active"
    assert body["provider_connection"]["connected"] is True and body["provider_connection"]["provider"] == "vault_probe"
    assert body["provider_connection"]["last_error_code"] == "auth_failed"
    assert [r["id"] for r in body["runs"]] == [run_id]
    assert body["runs"][0]["failures"][0]["reason_code"] == "auth_failed"
    assert body["findings"]["open_by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0}
    assert body["generated_at"].endswith("+00:00")

    [row] = audit_dicts(app)
    assert body["opening_id"] == row["id"] and row["tenant_id"] == tenant.id
    assert row["actor_id"] == users["operator"].id and row["meta"]["source_surface"] == "api"
    assert row["meta"]["api_token"]["id"] == api.token_id
    assert row["summary"] == "Support diagnostics opened through the API"
    [event] = event_dicts(app)
    assert event["meta"]["source_surface"] == "api" and event["tenant_id"] == tenant.id


def test_no_secret_setting_name_or_address_reaches_the_answer(app, world):
    tenant, _, _, _ = world
    text = json.dumps(client(app, "manager").post(url(tenant), json={}).get_json())
    for leak in (SECRET, SETTING, USER_NAME, TENANT_NAME, WORKSPACE_NAME, "@contoso.example", "dana.whitfield",
                 "exfil@evil.example", "secret_ref", "env:"):
        assert leak not in text, leak


def test_opening_for_one_run_and_a_foreign_run_is_404(app, world):
    tenant, _, run_id, foreign_run = world
    api = client(app, "manager")
    resp = api.post(url(tenant), json={"operation_run_id": run_id})
    assert resp.status_code == 201
    [row] = audit_dicts(app)
    assert row["meta"]["operation_run_id"] == run_id
    assert row["summary"] == f"Support diagnostics opened from operation run #{run_id} through the API"
    assert_problem(api.post(url(tenant), json={"operation_run_id": foreign_run}), 404, "not-found")
    assert len(audit_dicts(app)) == 1


def test_readonly_members_get_403_and_non_members_404_and_nothing_is_recorded(app, world):
    tenant, _, _, _ = world
    assert_problem(client(app, "readonly").post(url(tenant), json={}), 403, "forbidden")
    assert_problem(client(app, "outsider").post(url(tenant), json={}), 404, "not-found")
    assert_problem(client(app, "outsider").post("/admin/api/v1/tenants/2147483647/support-diagnostics", json={}),
                   404, "not-found")
    assert audit_dicts(app) == [] and event_dicts(app) == []


def test_a_token_narrower_than_its_owner_is_403_and_audited(app, world):
    tenant, users, _, _ = world
    api = client(app, "owner", capabilities=["tenant.view"])
    assert_problem(api.post(url(tenant), json={}), 403, "forbidden")
    assert audit_dicts(app) == []
    [denied] = audit_rows(app, "tenant.api_token.denied")
    assert denied.meta["reason"] == "missing_capability" and denied.meta["api_token"]["id"] == api.token_id


def test_removed_membership_after_token_creation_is_404(app, world):
    tenant, users, _, _ = world
    api = client(app, "manager")
    with app.app_context():
        db.session.execute(delete(Membership).where(Membership.user_id == users["manager"].id))
        db.session.commit()
    assert_problem(api.post(url(tenant), json={}), 404, "not-found")
    assert audit_rows(app, AUDIT_ACTION) == []


@pytest.mark.parametrize("body", [{"operation_run_id": 2**31}, {"operation_run_id": 10**40},
                                  {"operation_run_id": "١"}, {"operation_run_id": "1\x00"},
                                  {"operation_run_id": 0}, {"operation_run_id": -5}])
def test_hostile_run_ids_are_422_never_500(app, world, body):
    tenant, _, _, _ = world
    problem = assert_problem(client(app, "manager").post(url(tenant), json=body), 422, "validation")
    assert list(problem["errors"]) == ["operation_run_id"]
    assert audit_dicts(app) == []
