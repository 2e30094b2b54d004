"""The provider boundary in the tenant plane: a tenant's provider connection page, the
secret reference that is never shown back, and the connection check (SPEC 5)."""
import pytest
from sqlalchemy import select

from tenantpilot import hookimpl, providers
from tenantpilot.api import PolicyRecord, Provider, ProviderError, ProviderField
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationRun, ProviderConnection
from tenantpilot.testing import csrf_from, signed_in
from tests.helpers import audit_rows, count

SECRET = "s3cr3t-Value-that-must-never-show-9f8e7d6c5b4a"
REF = "env:TENANTPILOT_PROVIDER_SECRET_TP_TEST_ACME"
GUID = "11111111-2222-3333-4444-555555555555"
seen_infos = []


class AcmeClient:
    def __init__(self, info):
        seen_infos.append(info)
        if info.secret != SECRET:
            raise ProviderError("auth_failed", "The vendor refused the credentials.")

    def list_policies(self, policy_type):
        return [PolicyRecord(policy_type, "p1", "Policy 1", {"a": 1})]

    def get_policy(self, policy_type, policy_id):
        return None

    def apply_policy(self, policy_type, policy_id, payload):
        return "applied"

    def granted_permissions(self):
        return ["Policy.Read.All"]

    def directory_role_assignments(self):
        return []


class AcmePlugin:
    @hookimpl
    def tenantpilot_register_providers(self, app):
        return Provider(name="acme", label="Acme Cloud", factory=AcmeClient, policy_types={"baseline": "Baseline"},
                        fields=(ProviderField("tenant_guid", "Directory ID", kind="guid"),
                                ProviderField("client_id", "Client ID", kind="guid"),
                                ProviderField("client_secret_ref", "Client secret reference", kind="secret_ref")))


@pytest.fixture
def app(make_app, monkeypatch):
    monkeypatch.setenv("TENANTPILOT_PROVIDER_SECRET_TP_TEST_ACME", SECRET)
    seen_infos.clear()
    return make_app(plugins=[("acme", AcmePlugin())])


@pytest.fixture
def world(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Contoso HQ")
    for role in ("manager", "operator"):
        factory.user(email=f"{role}@example.test", memberships=[(ws, role)])
    factory.user(email="outsider@example.test", memberships=[(factory.workspace(), "owner")])
    return ws, tenant


def save(client, tenant, **fields):
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    return client.post(f"/admin/t/{tenant.id}/connection",
                       data={"csrf_token": csrf_from(page), "provider": "acme", **fields})


def everything_written(app) -> str:
    """Every audit row and run context, serialized: where a leaked secret would show."""
    with app.app_context():
        rows = [repr((a.summary, a.meta, a.target_label)) for a in db.session.scalars(select(AuditLog))]
        rows += [repr(r.context) for r in db.session.scalars(select(OperationRun))]
        rows += [repr((c.settings, c.last_error_message)) for c in db.session.scalars(select(ProviderConnection))]
        return "\n".join(rows)


def test_bad_settings_are_field_errors_and_nothing_is_saved(app, world):
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    r = save(client, tenant, tenant_guid="not-a-guid", client_id="", client_secret_ref=SECRET)
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "Directory ID must be a GUID" in html and "Client ID is required." in html
    assert "never the secret itself" in html
    assert SECRET not in html  # not even the value typed into the wrong field is echoed
    assert count(app, ProviderConnection) == 0 and audit_rows(app, "provider_connection.created") == []


def test_saved_connection_never_shows_its_secret_reference_and_checks_healthy(app, world, caplog):
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    assert save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref=REF).status_code == 302
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    assert "Acme Cloud" in page and "A client secret reference is configured" in page
    assert REF not in page and SECRET not in page
    [event] = audit_rows(app, "provider_connection.created")
    assert event.meta == {"provider": "acme", "settings_set": ["client_id", "tenant_guid"], "vault_reference_set": True}

    r = client.post(f"/admin/t/{tenant.id}/connection/check", data={"csrf_token": csrf_from(page)})
    assert r.status_code == 302
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    assert 'data-connection-health="healthy"' in page and "Connection healthy" in page
    assert seen_infos[-1].secret == SECRET and SECRET not in repr(seen_infos[-1])
    assert SECRET not in everything_written(app) and REF not in everything_written(app)
    assert SECRET not in caplog.text

    # A blank secret field keeps the stored reference.
    assert save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref="").status_code == 302
    with app.app_context():
        assert providers.connection_for(tenant.id).secret_ref == REF


def test_a_wrong_secret_is_reported_as_failing_without_the_secret(app, world, monkeypatch):
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref="env:TENANTPILOT_PROVIDER_SECRET_TP_TEST_ACME_OTHER")
    monkeypatch.setenv("TENANTPILOT_PROVIDER_SECRET_TP_TEST_ACME_OTHER", "wrong-secret-value-123")
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    client.post(f"/admin/t/{tenant.id}/connection/check", data={"csrf_token": csrf_from(page)})
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    assert 'data-connection-health="failing"' in page and "auth_failed" in page
    assert "wrong-secret-value-123" not in page and "wrong-secret-value-123" not in everything_written(app)
    monkeypatch.delenv("TENANTPILOT_PROVIDER_SECRET_TP_TEST_ACME_OTHER")
    with app.app_context(), pytest.raises(ProviderError) as exc:
        providers.client_for(tenant.id)
    assert exc.value.reason_code == "misconfigured"


def test_only_managers_change_the_connection_and_outsiders_see_nothing(app, world):
    _, tenant = world
    operator = signed_in(app, "admin", "operator@example.test")
    page = operator.get(f"/admin/t/{tenant.id}/connection")
    assert page.status_code == 200 and "Save connection" not in page.get_data(as_text=True)
    assert save(operator, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref=REF).status_code == 403
    outsider = signed_in(app, "admin", "outsider@example.test")
    assert outsider.get(f"/admin/t/{tenant.id}/connection").status_code == 404
    assert count(app, ProviderConnection) == 0


def test_tenant_run_page_shows_only_runs_of_that_tenant(app, world, factory):
    ws, tenant = world
    other = factory.tenant(ws, name="Other Tenant")
    with app.app_context():
        runs = [OperationRun(type="x.y", tenant_id=t.id, workspace_id=ws.id, run_identity_hash=f"h{t.id}",
                             context={"operation_label": "Sample operation"}) for t in (tenant, other)]
        db.session.add_all(runs)
        db.session.commit()
        mine, theirs = runs[0].id, runs[1].id
    client = signed_in(app, "admin", "operator@example.test")
    assert "Sample operation" in client.get(f"/admin/t/{tenant.id}/runs/{mine}").get_data(as_text=True)
    assert client.get(f"/admin/t/{tenant.id}/runs/{theirs}").status_code == 404
    assert signed_in(app, "admin", "outsider@example.test").get(f"/admin/t/{tenant.id}/runs/{mine}").status_code == 404


# --- secret references reach only what the operator exposed (issue: secret refs) --------

@pytest.mark.parametrize("ref", [
    "env:SECRET_KEY", "env:DATABASE_URL", "env:PATH", "env:tenantpilot_provider_secret_lower",
    "file:/etc/shadow", "file:/proc/self/environ", "file:../../etc/passwd",
    "file:/run/secrets/../../etc/passwd", "vault:whatever", "s3cr3t-typed-in-directly",
])
def test_secret_references_outside_the_exposed_set_are_refused_when_saved(app, world, ref):
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    r = save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref=ref)
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert html.count('class="field-error"') == 1 and "TENANTPILOT_PROVIDER_SECRET_" in html
    assert count(app, ProviderConnection) == 0 and seen_infos == []


def _store_ref(app, tenant, ref):
    """A connection saved before references were confined (or edited in the database)."""
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider="acme", secret_ref=ref,
                                          settings={"tenant_guid": GUID, "client_id": GUID}))
        db.session.commit()


def _check(client, tenant):
    page = client.get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    r = client.post(f"/admin/t/{tenant.id}/connection/check", data={"csrf_token": csrf_from(page)},
                    follow_redirects=True)
    assert r.status_code == 200
    return r.get_data(as_text=True)


@pytest.mark.parametrize("ref", ["env:SECRET_KEY", "file:/etc/passwd", "file:/proc/self/environ",
                                 "env:TENANTPILOT_PROVIDER_SECRET_NOT_SET", "file:missing-secret"])
def test_a_stored_reference_outside_the_set_is_refused_at_use_with_one_message(app, world, ref, tmp_path,
                                                                               monkeypatch):
    """No provider call, and the same words whether the variable or file exists or not."""
    monkeypatch.setenv("SECRET_KEY", "the-app-signing-key-that-must-not-leak")
    app.config["TENANTPILOT_PROVIDER_SECRETS_DIR"] = str(tmp_path)
    _, tenant = world
    _store_ref(app, tenant, ref)
    html = _check(signed_in(app, "admin", "manager@example.test"), tenant)
    assert "Connection failing: The connection&#39;s secret could not be read from its reference." in html
    assert seen_infos == []  # the provider was never asked


def test_exposed_env_and_secrets_dir_file_references_work(app, world, tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "acme").write_text(SECRET + "\n")
    app.config["TENANTPILOT_PROVIDER_SECRETS_DIR"] = str(secrets_dir)
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    for ref in ("file:acme", f"file:{secrets_dir}/acme", REF):
        r = save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref=ref)
        assert r.status_code == 302, ref
        assert "Connection healthy" in _check(client, tenant), ref
    assert [i.secret for i in seen_infos] == [SECRET] * 3


def test_a_symlink_out_of_the_secrets_dir_is_refused(app, world, tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    outside = tmp_path / "outside"
    outside.write_text(SECRET)
    (secrets_dir / "escape").symlink_to(outside)
    app.config["TENANTPILOT_PROVIDER_SECRETS_DIR"] = str(secrets_dir)
    _, tenant = world
    client = signed_in(app, "admin", "manager@example.test")
    r = save(client, tenant, tenant_guid=GUID, client_id=GUID, client_secret_ref="file:escape")
    assert r.status_code == 400 and count(app, ProviderConnection) == 0
    _store_ref(app, tenant, "file:escape")
    assert "secret could not be read" in _check(client, tenant)
    assert seen_infos == []


def test_the_provider_tab_explains_which_references_are_allowed(app, world):
    _, tenant = world
    html = signed_in(app, "admin", "manager@example.test").get(f"/admin/t/{tenant.id}/connection").get_data(as_text=True)
    assert "env:TENANTPILOT_PROVIDER_SECRET_&lt;NAME&gt;" in html and "file:&lt;name&gt;" in html
