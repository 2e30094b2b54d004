"""API tokens (issue 15): created on each plane's page or by the CLI, the secret shown
once and only its hash kept, refused when expired, revoked or wrong-plane, narrower than
the owner when asked, and losing what the owner loses. Every create, revoke and refusal
of a known token is audited; a string that is no token is not."""
import hashlib
import re

import pytest
from sqlalchemy import select

from tenantpilot.extensions import db
from tenantpilot.models import ApiToken, AuditLog, Membership, PlatformUser, User
from tenantpilot.testing import api_client, form_fields, run_cli, signed_in
from tests.helpers import audit_rows, count

OPS_EMAIL = "ops@example.test"
SECRET_RE = re.compile(r'id="token-secret" type="text" readonly value="(tp[sa]_[A-Za-z0-9_-]+)"')


@pytest.fixture
def world(app, factory):
    ws, other_ws = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    tenant = factory.tenant(ws, name="Northwind main")
    other_tenant = factory.tenant(other_ws, name="Fabrikam main")
    factory.platform_user(email=OPS_EMAIL)
    factory.platform_user(email="viewer@example.test",
                          capabilities=["platform.access_system_panel", "platform.runbooks.view"])
    factory.user(email="owner@example.test", memberships=[(ws, "owner")])
    factory.user(email="reader@example.test", memberships=[(ws, "readonly")])
    return {"ws": ws, "tenant": tenant, "other_tenant": other_tenant}


def create_on_page(client, plane, name="CI deploy job", caps=("platform.runbooks.view",), days="30"):
    page = client.get(f"/{plane}/api-tokens")
    assert page.status_code == 200
    fields = form_fields(page.get_data(as_text=True), f"/{plane}/api-tokens")
    data = {**fields, "name": name, "days": days, "capabilities": list(caps)}
    return client.post(f"/{plane}/api-tokens", data=data), data


def test_token_is_shown_once_and_only_its_hash_is_kept(app, world):
    client = signed_in(app, "system", OPS_EMAIL)
    page = client.get("/system/api-tokens").get_data(as_text=True)
    # Opening the plane is no action: a token has it whenever its owner does, so it is no choice.
    assert 'value="platform.access_system_panel"' not in page and 'value="platform.runbooks.view"' in page
    resp, data = create_on_page(client, "system", caps=("platform.audit.view", "platform.runbooks.view"))
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_data(as_text=True)
    secret = SECRET_RE.search(body).group(1)
    assert "shown only this once" in body and secret.startswith("tps_") and len(secret) > 40
    with app.app_context():
        [row] = db.session.scalars(select(ApiToken)).all()
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest() and row.prefix == secret[:10]
        assert row.capabilities == ["platform.audit.view", "platform.runbooks.view"]
        for audit in db.session.scalars(select(AuditLog)):
            assert secret not in repr(audit.meta) + (audit.summary or "")
    [created] = audit_rows(app, "platform.api_token.created")
    assert created.meta["api_token"]["id"] == row.id and created.meta["capabilities"] == row.capabilities
    # The list shows it, but never the secret again.
    listing = client.get("/system/api-tokens").get_data(as_text=True)
    assert "CI deploy job" in listing and secret[:10] + "…" in listing and secret not in listing
    assert "Active" in listing and "Never" in listing
    # A refresh of the create POST (same form token) makes no second token.
    again = client.post("/system/api-tokens", data=data)
    assert again.status_code == 302 and count(app, ApiToken) == 1
    # The token works, and its use is shown with time and address.
    resp = client.get("/system/api/v1/runbooks", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert "from 127.0.0.1" in client.get("/system/api-tokens").get_data(as_text=True)


def test_capabilities_beyond_the_owners_and_bad_names_are_field_errors(app, world):
    client = signed_in(app, "system", "viewer@example.test")
    resp, _ = create_on_page(client, "system", caps=("platform.runbooks.run",))
    assert resp.status_code == 422
    assert "A token can only have capabilities you hold: platform.runbooks.run." in resp.get_data(as_text=True)
    resp, _ = create_on_page(client, "system", name="bad\x00name")
    assert resp.status_code == 422 and "control characters" in resp.get_data(as_text=True)
    resp, _ = create_on_page(client, "system", caps=())
    assert resp.status_code == 422 and "Choose at least one capability." in resp.get_data(as_text=True)
    resp, _ = create_on_page(client, "system", days="9999999999999")
    assert resp.status_code == 422
    assert count(app, ApiToken) == 0


def test_requests_without_a_valid_token_get_401_problems(app, world):
    client = app.test_client()
    resp = client.get("/system/api/v1/runbooks")
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json["type"] == "urn:tenantpilot:problem:unauthorized" and resp.json["status"] == 401
    for header in ("Bearer nonsense", "Basic b3BzOnB3", "Bearer ", "Bearer tps_\u0661\u0662"):
        assert client.get("/system/api/v1/runbooks", headers={"Authorization": header}).status_code == 401
    assert count(app, AuditLog, AuditLog.action.like("%api_token.denied")) == 0  # names nobody
    # A session cookie is no API credential (the API needs no CSRF token for that reason).
    browser = signed_in(app, "system", OPS_EMAIL)
    assert browser.get("/system/api/v1/runbooks").status_code == 401
    # A token of the other plane is refused, and that is audited.
    tenant_api = api_client(app, "admin", "owner@example.test")
    resp = client.get("/system/api/v1/runbooks", headers={"Authorization": f"Bearer {tenant_api.token}"})
    assert resp.status_code == 401 and "other plane" in resp.json["detail"]
    [denied] = audit_rows(app, "tenant.api_token.denied")
    assert denied.meta["reason"] == "wrong_plane" and denied.meta["path"] == "/system/api/v1/runbooks"


def test_expired_and_revoked_tokens_are_refused_and_audited(app, world, clock):
    api = api_client(app, "system", OPS_EMAIL, days=1)
    assert api.get("/system/api/v1/runbooks").status_code == 200
    clock.advance(days=1, seconds=1)
    resp = api.get("/system/api/v1/runbooks")
    assert resp.status_code == 401 and "expired" in resp.json["detail"]
    [denied] = audit_rows(app, "platform.api_token.denied")
    assert denied.meta["reason"] == "expired" and denied.meta["api_token"]["id"] == api.token_id
    assert denied.status == "blocked" and denied.actor_name.startswith("Operator")

    fresh = api_client(app, "system", OPS_EMAIL, name="to revoke")
    browser = signed_in(app, "system", OPS_EMAIL)
    listing = browser.get("/system/api-tokens").get_data(as_text=True)
    assert "Expired" in listing and "to revoke" in listing
    fields = form_fields(listing, f"/system/api-tokens/{fresh.token_id}/revoke")
    resp = browser.post(f"/system/api-tokens/{fresh.token_id}/revoke", data=fields)
    assert resp.status_code == 302
    assert "is revoked" in browser.get("/system/api-tokens").get_data(as_text=True)
    assert fresh.get("/system/api/v1/runbooks").status_code == 401
    [revoked] = audit_rows(app, "platform.api_token.revoked")
    assert revoked.meta["api_token"]["id"] == fresh.token_id
    # Revoking again changes nothing and writes no second row.
    browser.post(f"/system/api-tokens/{fresh.token_id}/revoke", data=fields)
    assert len(audit_rows(app, "platform.api_token.revoked")) == 1
    # Nobody revokes someone else's token: the same 404 as a token that does not exist.
    mine = api_client(app, "system", "viewer@example.test")
    resp = browser.post(f"/system/api-tokens/{mine.token_id}/revoke", data=fields)
    assert resp.status_code == 404 and mine.get("/system/api/v1/runbooks").status_code == 200


def test_a_narrow_token_is_narrower_than_its_owner_and_loses_what_the_owner_loses(app, world):
    narrow = api_client(app, "system", OPS_EMAIL, capabilities=["platform.runbooks.view"])
    assert narrow.get("/system/api/v1/runbooks").status_code == 200
    resp = narrow.post("/system/api/v1/runbooks/anything/preflight", json={"scope": {"kind": "all_tenants"}})
    assert resp.status_code == 403 and resp.json["type"] == "urn:tenantpilot:problem:forbidden"
    [denied] = audit_rows(app, "platform.api_token.denied")
    assert denied.meta["reason"] == "missing_capability" and denied.meta["method"] == "POST"
    # The owner loses the panel: so does every token of theirs.
    full = api_client(app, "system", OPS_EMAIL)
    with app.app_context():
        user = db.session.execute(select(PlatformUser).filter_by(email=OPS_EMAIL)).scalar_one()
        user.capabilities = [c for c in user.capabilities if c != "platform.runbooks.view"]
        db.session.commit()
    assert full.get("/system/api/v1/runbooks").status_code == 403
    # Deactivated: no token of theirs authenticates.
    run_cli(app, ["users", "deactivate", "--email", OPS_EMAIL, "--platform"])
    resp = full.get("/system/api/v1/runbooks")
    assert resp.status_code == 401 and "deactivated" in resp.json["detail"]


def test_tenant_tokens_follow_membership_404_before_403(app, world):
    tenant_id, other_id = world["tenant"].id, world["other_tenant"].id
    owner = api_client(app, "admin", "owner@example.test")
    resp = owner.get("/admin/api/v1/tenants")
    assert resp.status_code == 200 and [t["name"] for t in resp.json["tenants"]] == ["Northwind main"]
    assert resp.json["tenants"][0]["role"] == "owner"
    assert owner.get(f"/admin/api/v1/tenants/{tenant_id}").json["name"] == "Northwind main"
    assert owner.get(f"/admin/api/v1/tenants/{other_id}").status_code == 404  # not a member
    assert owner.get("/admin/api/v1/tenants/99999999999").status_code == 404
    assert owner.get("/admin/api/v1/tenants/\u0661").status_code == 404
    narrow = api_client(app, "admin", "owner@example.test", capabilities=["tenant.view"])
    assert narrow.get("/admin/api/v1/tenants").json["tenants"][0]["capabilities"] == ["tenant.view"]
    # A reader cannot mint a token with an owner's capability.
    with pytest.raises(Exception):
        api_client(app, "admin", "reader@example.test", capabilities=["tenant.manage"])
    # Membership removed after the token was made: the tenant is gone for the token too.
    with app.app_context():
        user = db.session.execute(select(User).filter_by(email="owner@example.test")).scalar_one()
        db.session.execute(Membership.__table__.delete().where(Membership.user_id == user.id))
        db.session.commit()
    resp = owner.get(f"/admin/api/v1/tenants/{tenant_id}")
    assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    assert owner.get("/admin/api/v1/tenants").json["tenants"] == []


def test_tenant_plane_page_creates_tokens_of_held_capabilities_only(app, world):
    client = signed_in(app, "admin", "reader@example.test")
    page = client.get("/admin/api-tokens").get_data(as_text=True)
    assert "tenant.view" in page and "tenant.manage" not in page
    resp, _ = create_on_page(client, "admin", caps=("tenant.view",))
    assert resp.status_code == 201
    secret = SECRET_RE.search(resp.get_data(as_text=True)).group(1)
    assert secret.startswith("tpa_")
    resp = app.test_client().get("/admin/api/v1/tenants", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200 and len(resp.json["tenants"]) == 1
    [created] = audit_rows(app, "tenant.api_token.created")
    assert created.actor_type == "human"


def test_cli_creates_lists_and_revokes(app, world):
    result = run_cli(app, ["tokens", "create", "--plane", "system", "--email", OPS_EMAIL, "--name", "bootstrap",
                           "--all-capabilities", "--days", "7"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert secret.startswith("tps_")
    assert app.test_client().get("/system/api/v1/runbooks",
                                 headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listing = run_cli(app, ["tokens", "list"]).output
    assert "bootstrap" in listing and OPS_EMAIL in listing and "[active]" in listing and secret not in listing
    token_id = int(re.search(r"#(\d+)", listing).group(1))
    assert "revoked" in run_cli(app, ["tokens", "revoke", str(token_id)]).output
    assert "[revoked]" in run_cli(app, ["tokens", "list", "--plane", "system"]).output
    bad = run_cli(app, ["tokens", "create", "--plane", "system", "--email", "viewer@example.test", "--name", "x",
                        "--capability", "platform.runbooks.run"])
    assert bad.exit_code != 0 and "--capability" in bad.output
    assert run_cli(app, ["tokens", "revoke", "99999999999"]).exit_code != 0


def test_each_token_has_its_own_rate_limit_with_retry_after(make_app):
    from tenantpilot.testing import Factory

    app = make_app(TENANTPILOT_API_RATE_LIMIT="3 per minute")
    Factory(app).platform_user(email=OPS_EMAIL)
    first, second = api_client(app, "system", OPS_EMAIL), api_client(app, "system", OPS_EMAIL)
    assert [first.get("/system/api/v1/runbooks").status_code for _ in range(3)] == [200, 200, 200]
    resp = first.get("/system/api/v1/runbooks")
    assert resp.status_code == 429 and resp.mimetype == "application/problem+json"
    assert int(resp.headers["Retry-After"]) > 0 and resp.json["type"] == "urn:tenantpilot:problem:rate-limited"
    assert second.get("/system/api/v1/runbooks").status_code == 200
