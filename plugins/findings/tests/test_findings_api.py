"""The findings API (/admin/api/v1/tenants/<tenant>/findings): the page's filters and
keyset pages as JSON, and "Backfill findings lifecycle" through the same start seam, with
the page's 404/403/409 rules and a token's narrower share."""
import pytest
from sqlalchemy import delete, insert, select

from findings_helpers import PAUSE_REASON, add, finding, pause
from tenantpilot.sdk import Membership, OperationRun, db
from tenantpilot.testing import api_client
from tenantpilot_findings import plugin
from tenantpilot_findings.models import Finding
from tests.helpers import audit_rows, count, queued_jobs

PROBLEM = "urn:tenantpilot:problem:"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


@pytest.fixture
def world(app, factory):
    ws, other = factory.workspace(), factory.workspace()
    tenant = factory.tenant(ws, name="Contoso HQ")
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(other, "owner")])
    return ws, tenant, users


def client(app, role, **kw):
    return api_client(app, "admin", f"{role}@example.test", **kw)


def url(tenant, tail=""):
    return f"/admin/api/v1/tenants/{tenant.id}/findings{tail}"


def runs(app):
    with app.app_context():
        return db.session.scalars(select(OperationRun).order_by(OperationRun.id)).all()


def assert_problem(resp, status, slug):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == PROBLEM + slug and body["status"] == status
    return body


# --- list -----------------------------------------------------------------------------------

def test_members_list_findings_newest_first_with_the_pages_fields(app, world):
    _, tenant, _ = world
    old, new = add(app, finding(tenant.id, title="Stale devices"),
                   finding(tenant.id, type="drift", severity="critical", status="new", title="Drifted CA policy",
                           fingerprint="ca-1"))
    for role in ("owner", "manager", "operator", "readonly"):
        resp = client(app, role).get(url(tenant))
        assert resp.status_code == 200, role
        body = resp.get_json()
        assert [f["id"] for f in body["findings"]] == [new, old] and body["next_cursor"] is None
    first = body["findings"][0]
    assert (first["type"], first["severity"], first["status"], first["title"], first["fingerprint"]) == (
        "drift", "critical", "new", "Drifted CA policy", "ca-1")
    assert first["created_at"].endswith("+00:00") and first["due_at"] is None and first["overdue"] is False


def test_filters_are_the_pages_and_unknown_values_name_the_field(app, world):
    _, tenant, _ = world
    crit, perm, resolved = add(
        app, finding(tenant.id, type="drift", severity="critical", status="new"),
        finding(tenant.id, type="permission", severity="high", status="triaged"),
        finding(tenant.id, type="compliance", severity="low", status="resolved"))
    api = client(app, "readonly")

    def ids(query):
        resp = api.get(url(tenant, query))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return [f["id"] for f in resp.get_json()["findings"]]

    assert ids("") == [resolved, perm, crit]
    assert ids("?status=resolved") == [resolved]
    assert ids("?severity=critical") == [crit]
    assert ids("?type=permission") == [perm]
    assert ids("?type=drift&severity=high") == []
    body = assert_problem(api.get(url(tenant, "?status=bogus&severity=urgent")), 422, "validation")
    assert set(body["errors"]) == {"status", "severity"}


def test_keyset_pages_walk_every_finding_once(app, world):
    _, tenant, _ = world
    with app.app_context():
        db.session.execute(insert(Finding), [finding(tenant.id, title=f"Finding {i}") for i in range(25)])
        db.session.commit()
        all_ids = sorted(db.session.scalars(select(Finding.id)), reverse=True)
    api = client(app, "readonly")
    seen, cursor, pages = [], None, 0
    while True:
        resp = api.get(url(tenant, "?limit=10" + (f"&cursor={cursor}" if cursor else "")))
        assert resp.status_code == 200
        body = resp.get_json()
        seen += [f["id"] for f in body["findings"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert seen == all_ids and pages == 3
    # A filtered walk keeps its filter across pages.
    body = api.get(url(tenant, "?status=open&limit=200")).get_json()
    assert len(body["findings"]) == 25 and body["next_cursor"] is None


@pytest.mark.parametrize("query", ["?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?limit=%D9%A1%D9%A2",
                                   "?cursor=99999999999999999999999", "?cursor=%EF%BC%91", "?cursor=0",
                                   "?limit=1e3", "?cursor=%20"])
def test_out_of_range_and_non_ascii_numbers_are_422_naming_the_parameter(app, world, query):
    _, tenant, _ = world
    add(app, finding(tenant.id))
    body = assert_problem(client(app, "readonly").get(url(tenant, query)), 422, "validation")
    assert list(body["errors"]) == [query[1:].split("=")[0]]


@pytest.mark.parametrize("query", ["?status=new%00", "?severity=%00", "?type=drift%00x", "?cursor=1%00", "?q=%00"])
def test_a_nul_byte_in_the_query_is_a_4xx_problem_never_500(app, world, query):
    _, tenant, _ = world
    resp = client(app, "readonly").get(url(tenant, query))
    assert resp.status_code in (400, 422) and resp.mimetype == "application/problem+json", resp.status_code


def test_non_members_and_unknown_tenants_get_404_problems(app, world):
    _, tenant, _ = world
    outsider = client(app, "outsider")
    for path in (url(tenant), "/admin/api/v1/tenants/999999/findings", "/admin/api/v1/tenants/99999999999/findings"):
        assert_problem(outsider.get(path), 404, "not-found")
    assert_problem(outsider.post(url(tenant, "/backfill")), 404, "not-found")
    assert runs(app) == []


def test_removed_membership_after_token_creation_is_404(app, world):
    _, tenant, users = world
    api = client(app, "manager")
    assert api.get(url(tenant)).status_code == 200
    with app.app_context():
        db.session.execute(delete(Membership).where(Membership.user_id == users["manager"].id))
        db.session.commit()
    assert_problem(api.get(url(tenant)), 404, "not-found")
    assert_problem(api.post(url(tenant, "/backfill")), 404, "not-found")
    assert runs(app) == []


# --- backfill -------------------------------------------------------------------------------

def test_manager_starts_one_backfill_and_a_second_post_is_deduped(app, world):
    _, tenant, users = world
    api = client(app, "manager")
    resp = api.post(url(tenant, "/backfill"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    [run] = runs(app)
    assert body["status"] == "started" and body["message"] == f"Findings lifecycle backfill started (run #{run.id})."
    assert body["run"]["id"] == run.id and body["run"]["status"] == "queued"
    assert body["run"]["url"] == f"/admin/api/v1/tenants/{tenant.id}/runs/{run.id}"
    assert (run.type, run.tenant_id, run.context["source"], run.initiator_user_id) == (
        "findings.lifecycle.backfill", tenant.id, "api", users["manager"].id)
    assert run.context["initiator"]["api_token"]["id"] == api.token_id
    assert queued_jobs(app) == 1

    again = api.post(url(tenant, "/backfill"))
    assert again.status_code == 200
    assert again.get_json()["status"] == "deduped" and again.get_json()["run"]["id"] == run.id
    assert "already queued" in again.get_json()["message"]
    assert len(runs(app)) == 1 and queued_jobs(app) == 1

    # The run's url answers with the run, as the tenant run page shows it.
    status = api.get(body["run"]["url"])
    assert status.status_code == 200
    assert (status.get_json()["id"], status.get_json()["status"]) == (run.id, "queued")


def test_run_status_endpoint_only_shows_this_tenants_runs(app, world, factory, drain):
    ws, tenant, _ = world
    other = factory.tenant(ws, name="Other tenant")
    add(app, finding(tenant.id, status="acknowledged"))
    api = client(app, "owner")
    run_id = api.post(url(tenant, "/backfill")).get_json()["run"]["id"]
    drain(app)
    body = api.get(f"/admin/api/v1/tenants/{tenant.id}/runs/{run_id}").get_json()
    assert (body["status"], body["outcome"], body["failures"]) == ("completed", "succeeded", [])
    assert body["summary_counts"]["updated"] == 1
    assert_problem(api.get(f"/admin/api/v1/tenants/{other.id}/runs/{run_id}"), 404, "not-found")
    assert_problem(api.get(f"/admin/api/v1/tenants/{tenant.id}/runs/{run_id + 1000}"), 404, "not-found")
    assert_problem(client(app, "outsider").get(f"/admin/api/v1/tenants/{tenant.id}/runs/{run_id}"), 404, "not-found")


def test_operators_and_readonly_get_403_and_start_nothing(app, world):
    _, tenant, _ = world
    for role in ("operator", "readonly"):
        assert_problem(client(app, role).post(url(tenant, "/backfill")), 403, "forbidden")
    assert runs(app) == [] and queued_jobs(app) == 0


def test_a_token_narrower_than_its_owner_is_403_and_audited(app, world):
    _, tenant, users = world
    api = client(app, "owner", capabilities=["tenant.view"])
    assert api.get(url(tenant)).status_code == 200  # what the token holds still works
    assert_problem(api.post(url(tenant, "/backfill")), 403, "forbidden")
    assert runs(app) == [] and queued_jobs(app) == 0
    [denied] = audit_rows(app, "tenant.api_token.denied")
    assert (denied.meta["reason"], denied.meta["method"]) == ("missing_capability", "POST")
    assert denied.meta["api_token"]["id"] == api.token_id and denied.actor_id == users["owner"].id


@pytest.mark.parametrize("scope_type", ["global", "workspace"])
def test_paused_backfill_is_a_409_problem_with_the_reason_and_no_run(app, world, scope_type):
    ws, tenant, _ = world
    pause(app, scope_type, ws.id if scope_type == "workspace" else None)
    api = client(app, "manager")
    body = assert_problem(api.post(url(tenant, "/backfill")), 409, "paused")
    assert body["title"] == "Findings lifecycle backfill paused"
    assert body["reason"] == PAUSE_REASON and PAUSE_REASON in body["detail"]
    assert body["control_key"] == "findings.lifecycle.backfill"
    assert runs(app) == [] and queued_jobs(app) == 0
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert (event.workspace_id, event.tenant_id, event.meta["source"]) == (ws.id, tenant.id, "api")
    assert event.meta["api_token"]["id"] == api.token_id


def test_a_readonly_member_gets_403_not_paused(app, world):
    ws, tenant, _ = world
    pause(app, "workspace", ws.id)
    assert_problem(client(app, "readonly").post(url(tenant, "/backfill")), 403, "forbidden")
    assert count(app, OperationRun) == 0


def test_backfill_through_the_api_repairs_the_tenant(app, world, drain):
    _, tenant, _ = world
    legacy = add(app, finding(tenant.id, status="fixed"))[0]
    api = client(app, "owner")
    assert api.post(url(tenant, "/backfill")).status_code == 201
    drain(app)
    assert api.get(url(tenant, "?status=resolved")).get_json()["findings"][0]["id"] == legacy


def test_operations_are_in_the_openapi_document(app):
    paths = app.test_client().get("/admin/api/v1/openapi.json").get_json()["paths"]
    assert "get" in paths["/admin/api/v1/tenants/{tenant_id}/findings"]
    assert "post" in paths["/admin/api/v1/tenants/{tenant_id}/findings/backfill"]
    assert "get" in paths["/admin/api/v1/tenants/{tenant_id}/runs/{run_id}"]
