""""Open support diagnostics" (SPEC 5/6): the action on the tenant dashboard and the
operation-run viewer, who may use it, the sanitized bundle, and exactly one audit event
and one telemetry event per POST (none on any page render)."""
import html
import re

import pytest
from sqlalchemy import select

from support_helpers import (ACTION, EVENT, LEAKY_MESSAGE, add_findings, add_run, audit_dicts, connect,
                             event_dicts, rename_user, serialized)
from tenantpilot.api import Provider, ProviderError, ProviderField
from tenantpilot.testing import post_form, replay_spooled_telemetry, signed_in, spooled
from tenantpilot_findings import plugin as findings
from tenantpilot_simulated import client as sim
from tenantpilot_simulated import plugin as simulated
from tenantpilot_support import plugin
from tenantpilot.sdk import ProviderConnection, db, hookimpl, provider_connection

SECRET = "Sup3r-Secret-Value-4471"
SECRET_ENV = "TENANTPILOT_PROVIDER_SECRET_SUPPORT_DIAG_TEST"
SETTING = "https://vault-gw.internal.example/api-7731"
USER_NAME = "Dana Whitfield"
TENANT_NAME = "Contoso Hospitality"
WORKSPACE_NAME = "Northwind Partners"


class VaultClient:
    """A provider client that holds a real secret and fails its health check with a
    message quoting it (a badly behaved provider): neither may reach the bundle."""

    def __init__(self, info):
        assert info.secret == SECRET  # the reference resolved, so the check really ran
        self.secret = info.secret

    def granted_permissions(self):
        raise ProviderError("auth_failed", f"Vault refused {self.secret} for admin@contoso.example")


class VaultProvider:
    @hookimpl
    def tenantpilot_register_providers(self, app):
        return Provider(name="vault_probe", label="Vault probe", factory=VaultClient,
                        fields=(ProviderField("api_base", "API address"),
                                ProviderField("client_secret_ref", "Client secret reference", kind="secret_ref")))


@pytest.fixture
def app(make_app, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return make_app(plugins=[plugin, findings, simulated, ("vault_probe", VaultProvider())])


@pytest.fixture
def world(app, factory):
    ws, other = factory.workspace(WORKSPACE_NAME), factory.workspace()
    tenant = factory.tenant(ws, name=TENANT_NAME)
    sibling = factory.tenant(ws, name="Fabrikam Labs")
    users = {role: factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@example.test", memberships=[(other, "owner")])
    rename_user(app, users["operator"], USER_NAME)
    users["operator"].name = USER_NAME
    connect(app, tenant, "vault_probe", settings={"api_base": SETTING}, secret_ref=f"env:{SECRET_ENV}")
    connect(app, sibling, "simulated")
    run_id = add_run(app, tenant, initiator=users["operator"], failures=[("auth_failed", LEAKY_MESSAGE)])
    add_findings(app, tenant, ("critical", "new", "Mail forwarded to exfil@evil.example"),
                 ("critical", "triaged", "Legacy auth enabled"), ("high", "open", "Stale admin"),
                 ("low", "resolved", "Fixed thing"))
    return tenant, sibling, users, run_id




def open_from_home(client, tenant):
    """POST, then the redirect to the opening's page (Post/Redirect/Get)."""
    return post_form(client, f"/admin/t/{tenant.id}/support-diagnostics", None, page="/admin/",
                       follow_redirects=True)


def open_from_run(client, tenant, run_id):
    return post_form(client, f"/admin/t/{tenant.id}/runs/{run_id}/support-diagnostics", None, page="/admin/",
                       follow_redirects=True)


def bundle_section(body: str) -> str:
    return body[body.index("data-support-bundle"):]


def nothing_recorded(app):
    return audit_dicts(app) == [] and event_dicts(app) == []


# --- the button --------------------------------------------------------------------

def test_the_action_is_a_post_button_on_both_surfaces_for_members_with_the_capability(app, world):
    tenant, _, users, run_id = world
    operator, readonly = signed_in(app, "admin", users["operator"].email), signed_in(app, "admin", users["readonly"].email)
    for url, action in ((f"/admin/t/{tenant.id}/", f"/admin/t/{tenant.id}/support-diagnostics"),
                        (f"/admin/t/{tenant.id}/runs/{run_id}", f"/admin/t/{tenant.id}/runs/{run_id}/support-diagnostics")):
        body = operator.get(url).get_data(as_text=True)
        form = re.search(rf'<form method="post" action="([^"]+)" class="inline" data-tenant-action="{ACTION}">(.*?)</form>',
                         body, re.S)
        assert form and form.group(1) == action
        assert 'name="csrf_token"' in form.group(2) and "Open support diagnostics" in form.group(2)
        assert "Open support diagnostics" not in readonly.get(url).get_data(as_text=True)
    assert app.extensions["tenantpilot"].registry.owners[("tenant action", ACTION)] == "tenantpilot_support.plugin"


# --- one audit event and one telemetry event per POST --------------------------------

def test_open_from_the_tenant_dashboard_records_one_audit_and_one_event(app, world):
    tenant, _, users, run_id = world
    operator = signed_in(app, "admin", users["operator"].email)
    r = open_from_home(operator, tenant)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.get_data(as_text=True)
    assert 'data-source-surface="tenant_dashboard"' in body and "from the tenant dashboard" in body

    (row,) = audit_dicts(app)
    assert (row["actor_type"], row["actor_id"], row["workspace_id"], row["tenant_id"], row["status"]) == \
        ("human", users["operator"].id, tenant.workspace_id, tenant.id, "success")
    assert (row["target_type"], row["target_id"], row["target_label"]) == ("tenant", str(tenant.id), None)
    assert row["meta"] == {"source_surface": "tenant_dashboard",
                           "section_counts": {"tenant": 1, "provider_connection": 1, "runs": 1, "run_failures": 1,
                                              "open_findings": 3}}
    (event,) = event_dicts(app)
    assert (event["workspace_id"], event["tenant_id"], event["user_id"], event["feature_area"]) == \
        (tenant.workspace_id, tenant.id, users["operator"].id, "support_diagnostics")
    assert event["meta"] == {"source_surface": "tenant_dashboard"}  # operation_type only from a run
    assert (event["subject_type"], event["subject_id"]) == (None, None)
    assert_rows_are_name_and_email_free(row, event, users["operator"])

    assert open_from_home(operator, tenant).status_code == 200  # each explicit open is one more of each
    assert len(audit_dicts(app)) == 2 and len(event_dicts(app)) == 2


def test_open_from_the_run_viewer_records_the_run_and_its_operation_type(app, world):
    tenant, _, users, run_id = world
    manager = signed_in(app, "admin", users["manager"].email)
    r = open_from_run(manager, tenant, run_id)
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert 'data-source-surface="operation_run_viewer"' in body and f"from operation run #{run_id}" in body
    (row,) = audit_dicts(app)
    assert row["meta"] == {"source_surface": "operation_run_viewer", "operation_run_id": run_id,
                           "section_counts": {"tenant": 1, "provider_connection": 1, "runs": 1, "run_failures": 1,
                                              "open_findings": 3}}
    (event,) = event_dicts(app)
    assert event["meta"] == {"source_surface": "operation_run_viewer", "operation_type": "findings.lifecycle.backfill"}
    assert (event["subject_type"], event["subject_id"]) == ("operation_run", str(run_id))
    assert_rows_are_name_and_email_free(row, event, users["manager"])


def assert_rows_are_name_and_email_free(audit_row, event_row, user):
    # The audit row's actor snapshot (actor_name, actor_email) is SPEC 8's record of who
    # acted, on every audit event; everything this action writes besides it is checked.
    for text in (serialized(audit_row, without=("actor_name", "actor_email")), serialized(event_row)):
        assert "@" not in text
        for name in (user.name, user.email, TENANT_NAME, WORKSPACE_NAME, "Fabrikam"):
            assert name not in text, (name, text)
    assert audit_row["actor_name"] == user.name  # the snapshot is there, as for every audit row


# --- page renders record nothing ----------------------------------------------------

def test_rendering_and_refreshing_pages_records_nothing(app, world):
    tenant, _, users, run_id = world
    operator = signed_in(app, "admin", users["operator"].email)
    for _ in range(2):  # a render and a refresh
        assert operator.get(f"/admin/t/{tenant.id}/").status_code == 200
        assert operator.get(f"/admin/t/{tenant.id}/runs/{run_id}").status_code == 200
        assert operator.get(f"/admin/t/{tenant.id}/runs/{run_id}", headers={"HX-Request": "true"}).status_code == 200
    # A GET of the bundle's URL (a reload after the POST, a bookmark) goes back, building nothing.
    r = operator.get(f"/admin/t/{tenant.id}/support-diagnostics")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/admin/t/{tenant.id}/")
    r = operator.get(f"/admin/t/{tenant.id}/runs/{run_id}/support-diagnostics")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/admin/t/{tenant.id}/runs/{run_id}")
    assert nothing_recorded(app)
    with app.app_context():  # and nobody asked the provider anything
        assert db.session.scalars(select(ProviderConnection.last_checked_at)
                                  .where(ProviderConnection.tenant_id == tenant.id)).one() is None


def test_a_post_without_csrf_token_is_refused_and_records_nothing(app, world):
    tenant, _, users, _ = world
    operator = signed_in(app, "admin", users["operator"].email)
    assert operator.post(f"/admin/t/{tenant.id}/support-diagnostics").status_code == 400
    assert nothing_recorded(app)


# --- the bundle is sanitized --------------------------------------------------------

def test_the_bundle_shows_the_diagnostics_and_nothing_sensitive(app, world):
    tenant, _, users, run_id = world
    operator = signed_in(app, "admin", users["operator"].email)
    body = open_from_run(operator, tenant, run_id).get_data(as_text=True)
    bundle = bundle_section(body)
    text = html.unescape(body)

    # What support needs: tenant status, connection health (checked now), runs, failures, findings.
    assert 'data-tenant-status>active<' in bundle and tenant.external_id in bundle
    assert "Vault probe" in bundle and 'data-health="failing"' in bundle and "checked just now" in bundle
    assert "<code data-error-code>auth_failed</code>" in bundle
    assert f'data-run="{run_id}"' in bundle and "findings.lifecycle.backfill" in bundle
    assert "Token of [email] expired; ask [user] to re-consent" in html.unescape(bundle)  # scrubbed again
    assert re.search(r'data-severity="critical">2<', bundle) and re.search(r'data-severity="high">1<', bundle)
    assert re.search(r'data-severity="medium">0<', bundle) and re.search(r'data-severity="low">0<', bundle)

    # What it must never hold: the secret, its reference, settings, provider messages, e-mails, names.
    for leak in (SECRET, SECRET_ENV, SETTING, "Vault refused", "exfil", "Mail forwarded", "Legacy auth enabled"):
        assert leak not in text, leak
    assert "@" not in text  # no e-mail anywhere on the page (the provider's message quoted one)
    assert USER_NAME not in html.unescape(bundle)  # the run's initiator; the top bar shows who is signed in
    assert users["operator"].email not in text
    with app.app_context():  # the connection's stored message did get the secret: only the code is shown
        assert SECRET in provider_connection(tenant.id).last_error_message


def test_the_bundle_holds_no_policy_payloads(app, world):
    _, sibling, users, _ = world
    operator = signed_in(app, "admin", users["operator"].email)
    body = html.unescape(open_from_home(operator, sibling).get_data(as_text=True))
    assert "Simulated tenant" in body and 'data-health="healthy"' in body  # checked live: it answered
    with app.app_context():
        payloads = sim.state(sibling.id).values()
    values = {v for p in payloads for v in p.values() if isinstance(v, str) and len(v) > 6}
    assert values and not [v for v in values if v in body]
    assert "@odata" not in body and "@" not in body
    assert "No operation runs for this tenant yet." in body


def test_a_tenant_without_connection_and_an_app_without_findings(make_app, factory):
    app = make_app(plugins=[plugin])  # neither the findings plugin nor a provider
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    user = factory.user(email="op@example.test", memberships=[(ws, "operator")])
    r = open_from_home(signed_in(app, "admin", user.email), tenant)
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "This tenant has no provider connection." in body and "The findings plugin is not installed." in body
    (row,) = audit_dicts(app)
    assert row["meta"]["section_counts"] == {"tenant": 1, "provider_connection": 0, "runs": 0, "run_failures": 0}


# --- who may open it ---------------------------------------------------------------

@pytest.mark.parametrize("role, expected", [("owner", 200), ("manager", 200), ("operator", 200), ("readonly", 403),
                                            ("outsider", 404)])
def test_capability_and_membership(app, world, role, expected):
    tenant, _, users, run_id = world
    client = signed_in(app, "admin", users[role].email)
    assert open_from_home(client, tenant).status_code == expected
    assert open_from_run(client, tenant, run_id).status_code == expected
    assert client.get(f"/admin/t/{tenant.id}/support-diagnostics").status_code == (302 if expected == 200 else expected)
    recorded = 2 if expected == 200 else 0
    assert len(audit_dicts(app)) == recorded and len(event_dicts(app)) == recorded


def test_a_run_of_another_tenant_or_platform_wide_is_not_found(app, world):
    tenant, sibling, users, _ = world
    foreign = add_run(app, sibling)
    platform_wide = add_run(app, tenant, tenant_id=None)
    operator = signed_in(app, "admin", users["operator"].email)
    for run_id in (foreign, platform_wide, 999999):
        assert open_from_run(operator, tenant, run_id).status_code == 404
        assert operator.get(f"/admin/t/{tenant.id}/runs/{run_id}/support-diagnostics").status_code == 404
    assert nothing_recorded(app)
    assert open_from_run(operator, sibling, foreign).status_code == 200  # through its own tenant it opens


# --- failures around the action ------------------------------------------------------

def test_a_telemetry_failure_does_not_break_the_action(app, world, monkeypatch):
    tenant, _, users, run_id = world
    operator = signed_in(app, "admin", users["operator"].email)

    def broken_write(*args, **kwargs):
        raise RuntimeError("telemetry store down")

    with monkeypatch.context() as m:  # the recorder's own failure path (a white-box test)
        m.setattr("tenantpilot.telemetry.write", broken_write)
        r = open_from_run(operator, tenant, run_id)
    assert r.status_code == 200 and "data-support-bundle" in r.get_data(as_text=True)
    assert len(audit_dicts(app)) == 1 and event_dicts(app) == []
    with app.app_context():  # not dropped: spooled, and the scheduler's replay writes it once
        assert spooled("telemetry") == 1
        assert replay_spooled_telemetry() == 1 and replay_spooled_telemetry() == 0
    assert len(event_dicts(app)) == 1

    def raising_record(*args, **kwargs):  # even a recorder that breaks its never-raise contract
        raise RuntimeError("recorder bug")

    monkeypatch.setattr("tenantpilot.telemetry.record", raising_record)
    assert open_from_home(operator, tenant).status_code == 200
    assert len(audit_dicts(app)) == 2 and len(event_dicts(app)) == 1  # only the replayed one


def test_a_broken_provider_check_falls_back_to_the_stored_health(app, world, monkeypatch):
    tenant, _, users, _ = world
    with app.app_context():
        conn = provider_connection(tenant.id)
        conn.health, conn.last_error_code = "failing", "throttled"
        db.session.commit()

    def broken_check(tenant_id):
        raise RuntimeError("provider plugin bug")

    monkeypatch.setattr("tenantpilot.providers.check_connection", broken_check)
    body = open_from_home(signed_in(app, "admin", users["operator"].email), tenant).get_data(as_text=True)
    assert 'data-health="failing"' in body and "<code data-error-code>throttled</code>" in body
    assert "checked just now" not in body
    assert len(audit_dicts(app)) == 1 and len(event_dicts(app)) == 1


def test_refreshing_the_bundle_page_records_nothing_more(app, world):
    """Post/Redirect/Get: the POST records one opening; its page can be refreshed."""
    tenant, _, users, _ = world
    operator = signed_in(app, "admin", users["operator"].email)
    r = post_form(operator, f"/admin/t/{tenant.id}/support-diagnostics", None, page="/admin/")
    assert r.status_code == 302 and "/support-diagnostics/" in r.headers["Location"]
    for _ in range(3):  # the page and two refreshes
        page = operator.get(r.headers["Location"])
        assert page.status_code == 200 and "data-support-bundle" in page.get_data(as_text=True)
    assert len(audit_dicts(app)) == 1 and len(event_dicts(app)) == 1
    # Another member cannot open someone else's opening.
    other = signed_in(app, "admin", users["manager"].email)
    assert other.get(r.headers["Location"]).status_code == 404
