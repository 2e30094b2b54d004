"""Nobody in who doesn't belong: sessions that really end, throttled sign-in on both
planes, security headers, hostile input answered with 4xx and nothing written, CSV
exports that a spreadsheet cannot turn into formulas."""
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from tenantpilot.extensions import db
from tenantpilot.models import (AuditLog, AuthSession, BreakGlassSession, OperationalControlActivation, OperationRun,
                                PlatformUser, Tenant, User)
from tenantpilot.testing import csrf_from, csrf_token, login, signed_in
from tenantpilot.timeutil import utcnow
from tests.helpers import audit_rows, count

PASSWORDS = {"admin": "user-pass-123", "system": "platform-pass-123"}
HOME = {"admin": "/admin/", "system": "/system/"}


@pytest.fixture
def people(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Contoso")
    return {"admin": factory.user(email="owner@example.test", memberships=[(ws, "owner")]),
            "system": factory.platform_user(email="ops@example.test"), "ws": ws, "tenant": tenant}


def is_login_page(response, plane):
    return response.status_code == 302 and f"/{plane}/login" in response.headers["Location"]


EMAILS = {"admin": "owner@example.test", "system": "ops@example.test"}


# --- sessions end when they should --------------------------------------------------------

@pytest.mark.parametrize("plane", ["admin", "system"])
def test_a_cookie_replayed_after_sign_out_is_not_a_session(app, people, plane):
    client = signed_in(app, plane, EMAILS[plane])
    assert client.get(HOME[plane]).status_code == 200
    stolen = client.get_cookie(f"tp_{plane}_session", path=f"/{plane}").value
    assert client.post(f"/{plane}/logout", data={"csrf_token": csrf_token(client, HOME[plane])}).status_code == 302

    attacker = app.test_client()
    attacker.set_cookie(f"tp_{plane}_session", stolen, path=f"/{plane}")
    assert is_login_page(attacker.get(HOME[plane]), plane)  # the very next request
    with app.app_context():
        assert db.session.scalar(select(AuthSession.revoked_at)) is not None


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_sign_out_everywhere_ends_every_session_of_the_person(app, people, plane):
    first, second = signed_in(app, plane, EMAILS[plane]), signed_in(app, plane, EMAILS[plane])
    page = first.get(f"/{plane}/account")
    assert page.status_code == 200 and "2 active sessions" in page.get_data(as_text=True)
    r = first.post(f"/{plane}/account/sign-out-everywhere", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert is_login_page(r, plane)
    assert is_login_page(first.get(HOME[plane]), plane) and is_login_page(second.get(HOME[plane]), plane)
    prefix = "platform" if plane == "system" else "tenant"
    assert audit_rows(app, f"{prefix}.sessions.revoked_all")[0].meta["sessions_ended"] == 2


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, people, plane):
    here, elsewhere = signed_in(app, plane, EMAILS[plane]), signed_in(app, plane, EMAILS[plane])
    data = {"current_password": PASSWORDS[plane], "new_password": "a-brand-new-pass-42",
            "confirm_password": "a-brand-new-pass-42", "csrf_token": csrf_token(here, f"/{plane}/account")}
    assert here.post(f"/{plane}/account", data=data).status_code == 302
    assert here.get(HOME[plane]).status_code == 200
    assert is_login_page(elsewhere.get(HOME[plane]), plane)
    assert login(app.test_client(), plane, EMAILS[plane], "a-brand-new-pass-42").status_code == 302


def test_a_wrong_current_password_changes_nothing(app, people):
    client = signed_in(app, "admin", EMAILS["admin"])
    data = {"current_password": "not-my-password", "new_password": "a-brand-new-pass-42",
            "confirm_password": "a-brand-new-pass-42", "csrf_token": csrf_token(client, "/admin/account")}
    r = client.post("/admin/account", data=data)
    assert r.status_code == 422 and "This is not your current password." in r.get_data(as_text=True)
    assert login(app.test_client(), "admin", EMAILS["admin"], PASSWORDS["admin"]).status_code == 302


def test_a_password_set_outside_the_page_ends_sessions_too(app, people):
    """Any code path that sets a password (here the model, as a script would) ends older sessions."""
    client = signed_in(app, "admin", EMAILS["admin"])
    with app.app_context():
        user = db.session.get(User, people["admin"].id)
        user.set_password("set-by-a-script-123")
        db.session.commit()
    assert is_login_page(client.get("/admin/"), "admin")


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_deactivation_from_the_cli_ends_sessions_at_once(app, people, plane):
    client = signed_in(app, plane, EMAILS[plane])
    args = ["users", "deactivate", "--email", EMAILS[plane]] + (["--platform"] if plane == "system" else [])
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "1 session ended" in result.output
    assert is_login_page(client.get(HOME[plane]), plane)
    assert login(app.test_client(), plane, EMAILS[plane], PASSWORDS[plane]).status_code == 422


@pytest.mark.parametrize("plane,idle,absolute", [("admin", timedelta(hours=12), timedelta(days=7)),
                                                 ("system", timedelta(hours=1), timedelta(hours=12))])
def test_idle_and_absolute_lifetimes(app, people, plane, idle, absolute):
    client = signed_in(app, plane, EMAILS[plane])
    with app.app_context():
        now = utcnow()
        db.session.execute(update(AuthSession).values(last_seen_at=now - idle + timedelta(minutes=5)))
        db.session.commit()
    assert client.get(HOME[plane]).status_code == 200  # still inside the idle window: refreshed
    with app.app_context():
        seen = db.session.scalar(select(AuthSession.last_seen_at))
        assert utcnow() - seen < timedelta(minutes=1)
        db.session.execute(update(AuthSession).values(created_at=utcnow() - absolute - timedelta(minutes=1)))
        db.session.commit()
    assert is_login_page(client.get(HOME[plane]), plane)  # used all along, but too old

    other = signed_in(app, plane, EMAILS[plane])
    with app.app_context():
        db.session.execute(update(AuthSession).where(AuthSession.revoked_at.is_(None))
                           .values(last_seen_at=utcnow() - idle - timedelta(minutes=1)))
        db.session.commit()
    assert is_login_page(other.get(HOME[plane]), plane)


def test_sign_in_starts_a_new_session_and_csrf_secret(app, people):
    """A token planted before sign-in (session fixation of the CSRF secret) is refused after it."""
    client = app.test_client()
    planted = csrf_token(client, "/admin/login")
    r = client.post("/admin/login", data={"email": EMAILS["admin"], "password": PASSWORDS["admin"],
                                          "csrf_token": planted})
    assert r.status_code == 302
    stale = client.post("/admin/workspace", data={"workspace_id": people["ws"].id, "csrf_token": planted})
    assert stale.status_code == 400 and "CSRF" in stale.get_data(as_text=True)
    fresh = client.post("/admin/workspace", data={"workspace_id": people["ws"].id,
                                                  "csrf_token": csrf_token(client, "/admin/")})
    assert fresh.status_code == 302


def test_the_cookie_carries_only_a_random_session_id(app, people):
    client = signed_in(app, "admin", EMAILS["admin"])
    with app.app_context():
        rows = db.session.scalars(select(AuthSession)).all()
        assert len(rows) == 1 and len(rows[0].id) == 64 and rows[0].plane == "admin"
    assert rows[0].id not in client.get_cookie("tp_admin_session", path="/admin").value


# --- sign-in throttling --------------------------------------------------------------------

def _attempt(client, plane, email, password, ip="198.51.100.7", headers=None):
    page = client.get(f"/{plane}/login", environ_base={"REMOTE_ADDR": ip})
    return client.post(f"/{plane}/login", data={"email": email, "password": password,
                                               "csrf_token": csrf_from(page.get_data(as_text=True))},
                       environ_base={"REMOTE_ADDR": ip}, headers=headers or {})


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_the_eleventh_failed_sign_in_is_refused_with_retry_after(app, people, plane):
    client = app.test_client()
    for _ in range(10):
        assert _attempt(client, plane, EMAILS[plane], "wrong-password").status_code == 422
    r = _attempt(client, plane, EMAILS[plane], PASSWORDS[plane])
    assert r.status_code == 429 and "Too many attempts" in r.get_data(as_text=True)
    assert 0 < int(r.headers["Retry-After"]) <= 60
    # Another address is not locked out by this one.
    assert _attempt(app.test_client(), plane, EMAILS[plane], PASSWORDS[plane], ip="203.0.113.9").status_code == 302


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_successful_sign_ins_do_not_count(app, people, plane):
    client = app.test_client()
    for _ in range(15):
        assert _attempt(client, plane, EMAILS[plane], PASSWORDS[plane]).status_code == 302


def test_one_account_from_rotating_addresses_is_still_limited(make_app, factory):
    """X-Forwarded-For rotation behind a proxy (or many real addresses) does not buy more
    guesses at one account."""
    app = make_app(TENANTPILOT_BEHIND_PROXY="1", TENANTPILOT_LOGIN_ACCOUNT_RATE_LIMIT="5 per hour")
    from tenantpilot.testing import Factory

    Factory(app).user(email="victim@example.test")
    client = app.test_client()
    codes = [_attempt(client, "admin", "victim@example.test", "guess", headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
             for i in range(7)]
    assert codes == [422] * 5 + [429, 429]


def test_per_address_limit_across_accounts(make_app):
    app = make_app(TENANTPILOT_LOGIN_IP_RATE_LIMIT="4 per minute")
    client = app.test_client()
    codes = [_attempt(client, "admin", f"nobody{i}@example.test", "guess").status_code for i in range(6)]
    assert codes == [422] * 4 + [429, 429]


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_sign_in_works_while_the_limiter_storage_is_down(make_app, plane):
    """Redis unreachable: in-process limits, never a 500, never a lock-out."""
    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    from tenantpilot.testing import Factory

    f = Factory(app)
    f.user(email="owner@example.test")
    f.platform_user(email="ops@example.test")
    client = app.test_client()
    assert _attempt(client, plane, EMAILS[plane], "wrong").status_code == 422
    assert _attempt(client, plane, EMAILS[plane], PASSWORDS[plane]).status_code == 302
    for _ in range(9):
        _attempt(client, plane, EMAILS[plane], "wrong")
    assert _attempt(client, plane, EMAILS[plane], "wrong").status_code == 429  # still limited, in memory


@pytest.mark.parametrize("plane", ["admin", "system"])
def test_password_fields_are_password_inputs(client, plane):
    html = client.get(f"/{plane}/login").get_data(as_text=True)
    assert 'type="password"' in html and 'type="None"' not in html
    assert 'id="email"' in html and 'type="email"' in html


def test_selects_have_no_bogus_type(app, people):
    client = signed_in(app, "system", EMAILS["system"])
    from tenantpilot import hookimpl  # noqa: F401  (the canary runbook is a default plugin)

    html = client.get("/system/ops/runbooks/ops.pipeline_canary/preflight").get_data(as_text=True)
    assert 'type="None"' not in html


# --- headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/login", "/system/login", "/healthz"])
def test_security_headers_on_every_plane(client, path):
    r = client.get(path)
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_database_errors_never_log_bound_values(app):
    with app.app_context():
        with pytest.raises(Exception) as exc:
            db.session.execute(text("SELECT * FROM no_such_table WHERE x = :v"), {"v": "typed@example.test"})
        db.session.rollback()
    assert "typed@example.test" not in str(exc.value)


# --- hostile input: 4xx, nothing written ----------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/admin/t/2147483648/", "/admin/t/99999999999999999999/", "/admin/t/١/", "/admin/t/²/",
    "/admin/t/1/runs/9223372036854775808", "/admin/t/1/findings?before=99999999999",
])
def test_path_ids_out_of_range_or_not_ascii_are_404_or_400(app, people, path):
    r = signed_in(app, "admin", EMAILS["admin"]).get(path)
    assert r.status_code in (400, 404)


@pytest.mark.parametrize("query", [
    "before=99999999999", "before=١٢", "before=²", "tenant=9223372036854775808", "tenant=abc", "before=-1",
    "type=%00", "status=a%01b",
])
def test_runs_list_filters_and_cursors_out_of_range_are_400(app, people, query):
    r = signed_in(app, "system", EMAILS["system"]).get(f"/system/ops/runs?{query}")
    assert r.status_code == 400
    assert "whole number" in r.get_data(as_text=True) or "control characters" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/system/ops/alerts?before=99999999999", "/system/audit?before=²",
                                  "/system/audit?tenant=99999999999", "/system/audit/99999999999",
                                  "/system/ops/runs/2147483648", "/system/ops/runs/1?after=٣",
                                  "/system/ops/tenant-options?tenant_id=99999999999"])
def test_system_pages_answer_bad_numbers_with_4xx(app, people, path):
    assert signed_in(app, "system", EMAILS["system"]).get(path).status_code in (400, 404)


def test_nul_in_the_unauthenticated_login_form_is_a_field_error(app, people):
    client = app.test_client()
    before = count(app, AuditLog)
    r = client.post("/admin/login", data={"email": "owner\x00@example.test", "password": "x\x00y",
                                          "csrf_token": csrf_token(client, "/admin/login")})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "Remove the control characters" in html
    assert count(app, AuditLog) == before


def test_nul_in_a_break_glass_reason_is_a_field_error_and_no_row(app, people):
    client = signed_in(app, "system", EMAILS["system"])
    r = client.post("/system/break-glass/start", data={"reason": "incident\x00 in progress", "minutes": "30",
                                                      "csrf_token": csrf_token(client, "/system/break-glass")})
    assert r.status_code == 422 and "Remove the control characters" in r.get_data(as_text=True)
    assert count(app, BreakGlassSession) == 0


@pytest.mark.parametrize("minutes", ["99999999999999999999", "٣٠", "3e1", "-5"])
def test_break_glass_minutes_must_be_plain_digits_in_range(app, people, minutes):
    client = signed_in(app, "system", EMAILS["system"])
    r = client.post("/system/break-glass/start", data={"reason": "a real incident reason", "minutes": minutes,
                                                      "csrf_token": csrf_token(client, "/system/break-glass")})
    assert r.status_code == 422 and count(app, BreakGlassSession) == 0


def test_a_control_pause_reason_with_nul_is_refused_and_nothing_paused(app, people):
    client = signed_in(app, "system", EMAILS["system"])
    page = client.get("/system/ops/controls").get_data(as_text=True)
    r = client.post("/system/ops/controls/restore.execute/pause/confirm",
                    data={"scope_type": "global", "reason": "maintenance\x00window", "csrf_token": csrf_from(page)})
    assert 400 <= r.status_code < 500
    assert count(app, OperationalControlActivation) == 0


def test_non_numeric_preflight_id_and_one_tenant_without_a_tenant(app, people):
    client = signed_in(app, "system", EMAILS["system"])
    assert client.get("/system/ops/runbooks/ops.pipeline_canary/confirm?preflight=abc").status_code == 400
    assert client.get("/system/ops/runbooks/ops.pipeline_canary/confirm?preflight=99999999999").status_code == 400
    page = client.get("/system/ops/runbooks/ops.pipeline_canary/preflight").get_data(as_text=True)
    r = client.post("/system/ops/runbooks/ops.pipeline_canary/preflight",
                    data={"kind": "single_tenant", "workspace_id": "0", "tenant_query": "", "tenant_id": "",
                          "csrf_token": csrf_from(page)})
    assert r.status_code == 422 and "Choose an active tenant" in r.get_data(as_text=True)
    assert audit_rows(app, "platform.ops.runbooks.preflight") == []
    r = client.post("/system/ops/runbooks/ops.pipeline_canary/preflight",
                    data={"kind": "workspace", "workspace_id": "99999999999", "csrf_token": csrf_from(page)})
    assert r.status_code == 422 and audit_rows(app, "platform.ops.runbooks.preflight") == []


def test_query_strings_with_control_characters_are_400(app, people):
    r = signed_in(app, "system", EMAILS["system"]).get("/system/audit?actor=ops%00")
    assert r.status_code == 400 and "control characters" in r.get_data(as_text=True)


def test_rq_dashboard_unknown_job_is_404(app, people):
    client = signed_in(app, "system", EMAILS["system"])
    assert client.get("/system/ops/rq/0/view/job/no-such-job").status_code == 404
    assert client.get("/system/ops/rq/0/data/job/no-such-job.json").status_code == 404
    r = client.post("/system/ops/rq/job/no-such-job/requeue", headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 404


# --- CSV -----------------------------------------------------------------------------------------

def test_run_csv_neutralizes_spreadsheet_formulas(app, people, factory, drain):
    from tenantpilot import seam
    from tenantpilot.runs import Scope
    from tests.helpers import platform_actor

    ws = people["ws"]
    evil = factory.tenant(ws, name='=HYPERLINK("http://evil.example","click")')
    factory.tenant(ws, name="+1-555-0100")
    with app.app_context():
        outcome = seam.start("ops.pipeline_canary", scope=Scope("all_tenants"),
                             actor=platform_actor(app, people["system"]), source="cli",
                             context={"reason_code": "SUPPORT", "reason_text": "csv check"})
        run_id = outcome.run.id
    drain()
    body = signed_in(app, "system", EMAILS["system"]).get(f"/system/ops/runs/{run_id}/tenants.csv").get_data(as_text=True)
    assert f"{evil.id},'=HYPERLINK" in body.replace('"', "")
    assert ",'+1-555-0100," in body
    assert "\n=" not in body and ",=" not in body.replace('"', "")


def test_rq_dashboard_bad_registry_and_requeue_of_a_live_job_are_4xx(app, people):
    from tenantpilot.queue import get_queue

    with app.app_context():
        job = get_queue("runs", app).enqueue("tenantpilot.jobs.noop_for_tests_never_run")
        queue = get_queue("runs", app).name
    client = signed_in(app, "system", EMAILS["system"])
    assert client.get(f"/system/ops/rq/0/data/jobs/{queue}/〇/5/dsc/2.json").status_code == 404
    assert client.get(f"/system/ops/rq/0/data/jobs/{queue}/queued/0/dsc/1.json").status_code == 404
    assert client.get(f"/system/ops/rq/0/data/jobs/{queue}/queued/8/dsc/1.json").status_code == 200
    r = client.post(f"/system/ops/rq/job/{job.id}/requeue", headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 409


def test_htmx_error_fragments_escape_what_the_request_said(client):
    r = client.get("/admin/login?%3Cscript%3Ex%3C%2Fscript%3E=%01", headers={"HX-Request": "true"})
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "<script>" not in body and "&lt;script&gt;" in body


def test_sign_in_and_the_api_work_with_rate_limiting_switched_off(make_app, factory):
    """Flask-Limiter's own switch (RATELIMIT_ENABLED=false, e.g. behind a gateway that
    limits) turns the limits off; it must not take sign-in down with them. The limiter
    registers itself nowhere when disabled, so a limiter only the decorators knew (by weak
    reference) was collected and every limited view answered 500."""
    import gc

    app = make_app(RATELIMIT_ENABLED=False, TENANTPILOT_API_RATE_LIMIT="2 per minute")
    from tenantpilot.testing import Factory, api_client

    f = Factory(app)
    f.user(email="owner@example.test")
    f.platform_user(email="ops@example.test")
    gc.collect()
    client = app.test_client()
    codes = [_attempt(client, "admin", "owner@example.test", "wrong").status_code for _ in range(12)]
    assert codes == [422] * 12  # no 429 either: the limits are off
    assert _attempt(client, "admin", "owner@example.test", PASSWORDS["admin"]).status_code == 302
    api = api_client(app, "system", "ops@example.test")
    assert [api.get("/system/api/v1/runbooks").status_code for _ in range(4)] == [200] * 4
