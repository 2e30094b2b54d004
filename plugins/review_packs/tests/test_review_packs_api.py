"""The review packs API (/admin/api/v1/tenants/<tenant>/review-packs): the page's request
(new, deduped while queued, reused while identical) and one pack's status with a signed
link to the page's download route; the page's 404/403/409 rules and a token's share."""
import pytest
from sqlalchemy import delete, update

from review_pack_helpers import TENANT_NAME, add_findings, events, packs, signed_in
from tenantpilot.sdk import Membership, OperationRun, Tenant, db
from tenantpilot.testing import api_client
from tenantpilot_review_packs import plugin
from tests.helpers import audit_rows, count, queued_jobs

PROBLEM = "urn:tenantpilot:problem:"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


@pytest.fixture
def world(app, factory):
    ws, other_ws = factory.workspace("Review WS"), factory.workspace("Other WS")
    tenant = factory.tenant(ws, name=TENANT_NAME)
    other = factory.tenant(other_ws, name="Fabrikam Elsewhere")
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(other_ws, "owner")])
    return tenant, other, users


def client(app, role, **kw):
    return api_client(app, "admin", f"{role}@example.test", **kw)


def url(tenant, tail=""):
    return f"/admin/api/v1/tenants/{tenant.id}/review-packs{tail}"


def assert_problem(resp, status, slug):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == PROBLEM + slug and body["status"] == status
    return body


def test_request_starts_one_generation_polls_to_ready_and_links_the_page_download(app, world, drain):
    tenant, _, users = world
    add_findings(app, tenant, 3)
    api = client(app, "operator")
    resp = api.post(url(tenant), json={"include_operations": True})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    [row] = packs(app, tenant)
    assert body["status"] == "started" and body["pack"]["id"] == row.id and body["pack"]["status"] == "queued"
    assert (body["pack"]["include_operations"], body["pack"]["include_pii"]) == (True, False)
    assert body["pack"]["download_url"] is None
    assert body["run"]["id"] == row.operation_run_id and body["run"]["url"].startswith(f"/admin/api/v1/tenants/{tenant.id}/runs/")
    with app.app_context():
        run = db.session.get(OperationRun, row.operation_run_id)
        assert (run.type, run.context["source"]) == ("review_pack.generate", "api")
    [requested] = audit_rows(app, "review_pack.requested")
    assert requested.meta["api_token"]["id"] == api.token_id and requested.actor_id == users["operator"].id
    assert events(app)[-1]["metadata"] == {"source_surface": "api", "include_operations": True, "include_pii": False}

    again = api.post(url(tenant), json={"include_operations": True})
    assert again.status_code == 200 and again.get_json()["status"] == "deduped"
    assert again.get_json()["pack"]["id"] == row.id and len(packs(app, tenant)) == 1 and queued_jobs(app) == 1

    drain()
    status = api.get(url(tenant, f"/{row.id}"))
    assert status.status_code == 200
    pack = status.get_json()
    assert pack["status"] == "ready" and pack["row_counts"]["findings"] == 3 and pack["sha256"]
    assert pack["download_url"].startswith(f"/admin/t/{tenant.id}/review-packs/{row.id}/download?token=")
    assert pack["download_url_expires_in"] > 0
    # The link is the page's route: a signed-in member downloads the ZIP with it.
    download = signed_in(app, "admin", "operator@example.test").get(pack["download_url"])
    assert download.status_code == 200 and download.mimetype == "application/zip"

    reused = api.post(url(tenant), json={"include_operations": True})
    assert reused.status_code == 200 and reused.get_json()["status"] == "reused"
    assert reused.get_json()["run"] is None and reused.get_json()["pack"]["id"] == row.id


def test_members_without_the_capability_get_403_and_nothing_starts(app, world):
    tenant, _, _ = world
    assert_problem(client(app, "readonly").post(url(tenant), json={}), 403, "forbidden")
    assert packs(app) == [] and count(app, OperationRun) == 0 and events(app) == []


def test_a_token_narrower_than_its_owner_is_403_and_audited(app, world):
    tenant, _, users = world
    api = client(app, "owner", capabilities=["tenant.view"])
    assert_problem(api.post(url(tenant), json={}), 403, "forbidden")
    assert packs(app) == [] and count(app, OperationRun) == 0
    [denied] = audit_rows(app, "tenant.api_token.denied")
    assert denied.meta["reason"] == "missing_capability" and denied.meta["api_token"]["id"] == api.token_id


def test_non_members_and_other_tenants_packs_are_404(app, world, drain):
    tenant, other, _ = world
    outsider = client(app, "outsider")
    assert_problem(outsider.post(url(tenant), json={}), 404, "not-found")
    theirs = outsider.post(url(other), json={}).get_json()["pack"]["id"]
    manager = client(app, "manager")
    assert_problem(manager.get(url(tenant, f"/{theirs}")), 404, "not-found")
    assert_problem(manager.get(url(other, f"/{theirs}")), 404, "not-found")
    assert_problem(manager.get(url(tenant, "/99999999")), 404, "not-found")
    assert_problem(manager.get(url(tenant, "/99999999999999999999")), 404, "not-found")
    assert len(packs(app, tenant)) == 0


def test_removed_membership_after_token_creation_is_404(app, world):
    tenant, _, users = world
    api = client(app, "manager")
    with app.app_context():
        db.session.execute(delete(Membership).where(Membership.user_id == users["manager"].id))
        db.session.commit()
    assert_problem(api.post(url(tenant), json={}), 404, "not-found")
    assert packs(app) == []


def test_an_archived_tenant_is_409_and_starts_nothing(app, world):
    tenant, _, _ = world
    with app.app_context():
        db.session.execute(update(Tenant).where(Tenant.id == tenant.id).values(status="archived"))
        db.session.commit()
    assert_problem(client(app, "manager").post(url(tenant), json={}), 409, "tenant-archived")
    assert packs(app) == [] and count(app, OperationRun) == 0


@pytest.mark.parametrize("body", [{"include_pii": "maybe"}, {"include_pii": "yes"}, {"include_pii": 1},
                                  {"include_operations": "true"}, {"include_pii": None}, {"include_pii": "\x00"},
                                  {"include_operations": [True]}])
def test_anything_but_true_or_false_is_422_so_pii_is_never_guessed(app, world, body):
    tenant, _, _ = world
    problem = assert_problem(client(app, "manager").post(url(tenant), json=body), 422, "validation")
    assert set(problem["errors"]) == set(body)
    assert packs(app) == [] and count(app, OperationRun) == 0
