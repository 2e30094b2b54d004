"""Plane isolation, sessions, capabilities, CSRF, login rate limit and audit, break-glass."""
import pytest

from tenantpilot.models import AuditLog, BreakGlassSession, PlatformUser
from tenantpilot.testing import csrf_from, login
from tests.helpers import audit_rows, count


@pytest.fixture
def world(app, factory):
    ws, other = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    return {
        "ws": ws,
        "other": other,
        "tenant": factory.tenant(ws, name="Northwind HQ"),
        "foreign": factory.tenant(other, name="Fabrikam Secret Tenant"),
        "ops": factory.platform_user(email="ops@example.test", password="ops-password-1"),
        "viewer": factory.platform_user(email="viewer@example.test", password="viewer-password-1",
                                        capabilities=["platform.access_system_panel"]),
        "owner": factory.user(email="owner@example.test", password="owner-password-1",
                              memberships=[(ws, "owner")]),
    }


def cookie(client, name):
    return client.get_cookie(name, path="/system" if "system" in name else "/admin")


def test_each_plane_has_its_own_cookie_name_and_path(client, world):
    assert login(client, "system", "ops@example.test", "ops-password-1").status_code == 302
    system_cookie = cookie(client, "tp_system_session")
    assert system_cookie is not None and system_cookie.path == "/system"
    assert system_cookie.http_only and system_cookie.same_site == "Lax"
    assert cookie(client, "tp_admin_session") is None
    assert login(client, "admin", "owner@example.test", "owner-password-1").status_code == 302
    admin_cookie = cookie(client, "tp_admin_session")
    assert admin_cookie.path == "/admin" and admin_cookie.http_only


def test_tenant_session_is_not_signed_in_on_system(client, world):
    login(client, "admin", "owner@example.test", "owner-password-1")
    assert client.get("/admin/").status_code == 200
    resp = client.get("/system/")
    assert resp.status_code == 302 and "/system/login" in resp.headers["Location"]


def test_system_session_is_not_signed_in_on_admin(client, world):
    login(client, "system", "ops@example.test", "ops-password-1")
    assert client.get("/system/").status_code == 200
    resp = client.get(f"/admin/t/{world['tenant'].id}/")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]


def test_a_cookie_copied_across_planes_is_rejected(app, world):
    a = app.test_client()
    login(a, "admin", "owner@example.test", "owner-password-1")
    value = cookie(a, "tp_admin_session").value
    b = app.test_client()
    b.set_cookie("tp_system_session", value, path="/system")
    resp = b.get("/system/")
    assert resp.status_code == 302 and "/system/login" in resp.headers["Location"]


def test_secure_cookie_over_https(client, world):
    page = client.get("/system/login", base_url="https://localhost")
    # Over HTTPS Flask-WTF also checks that the Referer is this site, as a browser sends it.
    resp = client.post("/system/login", base_url="https://localhost",
                       headers={"Referer": "https://localhost/system/login"}, data={
        "email": "ops@example.test", "password": "ops-password-1", "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert resp.status_code == 302
    set_cookie = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("tp_system_session=")][0]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "Path=/system" in set_cookie


def test_non_member_gets_404_member_gets_the_tenant(client, world):
    login(client, "admin", "owner@example.test", "owner-password-1")
    home = client.get(f"/admin/t/{world['tenant'].id}/")
    assert home.status_code == 200 and "Northwind HQ" in home.get_data(as_text=True)
    foreign = client.get(f"/admin/t/{world['foreign'].id}/")
    assert foreign.status_code == 404
    assert "Fabrikam Secret Tenant" not in foreign.get_data(as_text=True)
    assert client.get("/admin/t/999999/").status_code == 404


def test_tenant_list_and_workspace_switcher_show_only_memberships(client, world, factory):
    factory.user(email="multi@example.test", password="multi-password-1",
                 memberships=[(world["ws"], "readonly"), (world["other"], "manager")])
    login(client, "admin", "multi@example.test", "multi-password-1")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Fabrikam" in page and "Northwind" in page
    first = "Fabrikam Secret Tenant" in page
    ws_to = world["ws"] if first else world["other"]
    resp = client.post("/admin/workspace", data={"workspace_id": ws_to.id, "csrf_token": csrf_from(page)})
    assert resp.status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert ("Northwind HQ" in page) == first and ("Fabrikam Secret Tenant" in page) != first
    # Switching to a workspace one is not a member of does not disclose it.
    stranger_ws = factory.workspace("Stranger")
    resp = client.post("/admin/workspace", data={"workspace_id": stranger_ws.id, "csrf_token": csrf_from(page)})
    assert resp.status_code == 404


def test_platform_user_without_console_capability_gets_403(client, world):
    login(client, "system", "viewer@example.test", "viewer-password-1")
    resp = client.get("/system/")
    assert resp.status_code == 403
    assert "Control tower" not in resp.get_data(as_text=True)


def test_inactive_platform_user_cannot_sign_in(app, client, world):
    with app.app_context():
        from tenantpilot.extensions import db

        db.session.get(PlatformUser, world["ops"].id).is_active = False
        db.session.commit()
    resp = login(client, "system", "ops@example.test", "ops-password-1")
    assert resp.status_code == 422 and "incorrect" in resp.get_data(as_text=True)


def test_post_without_csrf_token_is_400_and_writes_nothing(app, client, world):
    before = count(app, AuditLog)
    resp = client.post("/system/login", data={"email": "ops@example.test", "password": "ops-password-1"})
    assert resp.status_code == 400
    assert "CSRF" in resp.get_data(as_text=True)
    assert count(app, AuditLog) == before
    assert client.get("/system/").status_code == 302  # not signed in
    login(client, "system", "ops@example.test", "ops-password-1")
    resp = client.post("/system/break-glass/start", data={"reason": "Incident 42 needs hands", "minutes": 30})
    assert resp.status_code == 400
    assert count(app, BreakGlassSession) == 0


def test_login_form_errors_are_shown_next_to_the_field(client, world):
    page = client.get("/system/login").get_data(as_text=True)
    resp = client.post("/system/login", data={"email": "not-an-email", "password": "", "csrf_token": csrf_from(page)})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="email-error"' in body and "valid e-mail" in body
    assert 'id="password-error"' in body and "Enter your password" in body


def test_login_rate_limit_11th_attempt_is_429_and_attempts_are_audited(app, client, world):
    page = client.get("/system/login").get_data(as_text=True)
    token = csrf_from(page)
    codes = [client.post("/system/login", data={"email": "ops@example.test", "password": f"wrong-{i}",
                                                "csrf_token": token}).status_code for i in range(11)]
    assert codes[:10] == [422] * 10
    assert codes[10] == 429
    last = client.post("/system/login", data={"email": "ops@example.test", "password": "ops-password-1",
                                              "csrf_token": token})
    assert last.status_code == 429 and "Too many attempts" in last.get_data(as_text=True)
    failed = audit_rows(app, "platform.login.failed")
    assert len(failed) == 10
    assert all(r.workspace_id is None and r.tenant_id is None and r.status == "failed" for r in failed)
    # Another username from the same IP is counted separately.
    assert login(client, "system", "viewer@example.test", "viewer-password-1").status_code == 302
    assert len(audit_rows(app, "platform.login.succeeded")) == 1


def test_successful_login_is_audited_without_the_password(app, client, world):
    login(client, "system", "ops@example.test", "ops-password-1")
    [row] = audit_rows(app, "platform.login.succeeded")
    assert row.actor_type == "platform" and row.actor_id == world["ops"].id
    assert "ops-password-1" not in str(row.meta) + (row.summary or "")


def test_break_glass_is_time_boxed_audited_and_shown(app, client, world):
    login(client, "system", "ops@example.test", "ops-password-1")
    page = client.get("/system/").get_data(as_text=True)
    resp = client.post("/system/break-glass/start", data={"reason": "short", "minutes": 30,
                                                          "csrf_token": csrf_from(page)})
    assert resp.status_code == 422 and "10 to 500 characters" in resp.get_data(as_text=True)
    assert count(app, BreakGlassSession) == 0
    resp = client.post("/system/break-glass/start", data={"reason": "INC-4211 tenant locked out of Intune",
                                                          "csrf_token": csrf_from(page)})
    assert resp.status_code == 302
    page = client.get("/system/").get_data(as_text=True)
    assert "Break-glass active" in page and "INC-4211" in page
    [started] = audit_rows(app, "platform.break_glass.started")
    assert started.meta["minutes"] == 30 and started.workspace_id is None
    resp = client.post("/system/break-glass/stop", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 302
    assert "Break-glass active" not in client.get("/system/").get_data(as_text=True)
    assert len(audit_rows(app, "platform.break_glass.ended")) == 1


def test_logout_ends_only_that_plane(client, world):
    login(client, "system", "ops@example.test", "ops-password-1")
    login(client, "admin", "owner@example.test", "owner-password-1")
    page = client.get("/system/").get_data(as_text=True)
    assert client.post("/system/logout", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert client.get("/system/").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_open_redirect_via_next_is_refused(client, world):
    page = client.get("/system/login?next=https://evil.example/").get_data(as_text=True)
    resp = client.post("/system/login?next=https://evil.example/", data={
        "email": "ops@example.test", "password": "ops-password-1", "csrf_token": csrf_from(page)})
    assert resp.headers["Location"] == "/system/"


def test_error_pages_use_the_plane_layout(client, world):
    login(client, "admin", "owner@example.test", "owner-password-1")
    body = client.get("/admin/t/424242/").get_data(as_text=True)
    assert "Not found" in body and "Sign out" in body
    assert client.get("/nowhere").status_code == 404


def test_concurrent_requests_of_both_planes_keep_their_sessions(app, world):
    """The session interface is shared by threads; each plane must keep its own signer."""
    import threading

    sys_client, adm_client = app.test_client(), app.test_client()
    login(sys_client, "system", "ops@example.test", "ops-password-1")
    login(adm_client, "admin", "owner@example.test", "owner-password-1")
    codes = []

    def hammer(client, url):
        for _ in range(25):
            codes.append((url, client.get(url).status_code))

    threads = [threading.Thread(target=hammer, args=(sys_client, "/system/")),
               threading.Thread(target=hammer, args=(adm_client, "/admin/"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert {code for _, code in codes} == {200}, [c for c in codes if c[1] != 200][:3]


def test_expired_break_glass_no_longer_shows(app, client, world):
    from datetime import timedelta

    from tenantpilot.extensions import db
    from tenantpilot.timeutil import utcnow

    with app.app_context():
        db.session.add(BreakGlassSession(platform_user_id=world["ops"].id, reason="Old incident INC-1",
                                         started_at=utcnow() - timedelta(hours=2),
                                         expires_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    login(client, "system", "ops@example.test", "ops-password-1")
    assert "Break-glass active" not in client.get("/system/").get_data(as_text=True)


def test_server_error_page_matches_layout_and_hides_details(make_app):
    from flask import Blueprint

    from tenantpilot import hookimpl

    class Broken:
        @hookimpl
        def tenantpilot_register_blueprints(self, app, plane):
            bp = Blueprint(f"broken_{plane}", __name__, url_prefix="/broken")
            bp.get("/")(lambda: 1 / 0)
            return bp

    app = make_app(plugins=[("broken", Broken())], TESTING=False, PROPAGATE_EXCEPTIONS=False)
    resp = app.test_client().get("/system/broken/")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 500
    assert "Something went wrong" in body and "ZeroDivisionError" not in body and "Traceback" not in body
    assert "TenantPilot Ops" in body and "System" in body  # the system plane's layout
