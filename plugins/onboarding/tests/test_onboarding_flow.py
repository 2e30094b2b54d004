"""The onboarding wizard over HTTP with the simulated provider (SPEC 5, 6): a draft walks
identify → connect_provider → verify_access → ready_for_activation → activated; each
tenant-linked checkpoint records exactly one telemetry event, nothing else does."""
from datetime import datetime

import pytest
from sqlalchemy import select

from onboarding_helpers import (EVENT, GUID, GUID_MISSING, draft_id_of, draft_row, events, identify, make_tenant,
                                post, serialized, signed_in)
from tenantpilot.api import ProviderError
from tenantpilot_onboarding import plugin, service
from tenantpilot_onboarding.models import OnboardingDraft
from tenantpilot_simulated import client as sim
from tenantpilot_simulated import plugin as simulated
from tests.helpers import audit_rows, count, queued_jobs
from tenantpilot.sdk import OperationRun, ProviderConnection, Scope, Tenant, db
from tenantpilot.testing import replay_spooled_telemetry, spooled, tenant_universe

ALLOWED = {"checkpoint_key", "lifecycle_state", "completed_at"}


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated])


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Fabrikam MSP")
    other = factory.workspace("Other MSP")
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    return ws, other, manager


def walk_to_verify(app, client):
    """identify + connect_provider; returns the draft id."""
    r = identify(client)
    assert r.status_code == 302
    draft_id = draft_id_of(r)
    assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    return draft_id


def verify(app, client, draft_id, drain):
    r = post(client, draft_id, "verify")
    assert r.status_code == 302
    drain()
    return draft_row(app, draft_id)


def test_walk_to_activated_records_one_event_per_tenant_checkpoint(app, world, drain):
    ws, _, manager = world
    client = signed_in(app, "admin", manager.email)
    assert "Onboard a tenant" in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/onboarding/").status_code == 200
    assert client.get("/admin/onboarding/new").status_code == 200

    # identify: a draft, no tenant, no event.
    r = identify(client, "Contoso Ltd", GUID.upper())  # stored normalized
    assert r.status_code == 302
    draft_id = draft_id_of(r)
    draft = draft_row(app, draft_id)
    assert (draft.checkpoint, draft.lifecycle_state, draft.tenant_id, draft.external_id) == (
        "identify", "identified", None, GUID)
    assert count(app, Tenant) == 0 and events(app) == []

    # connect_provider: tenant (onboarding: a draft) + connection + draft link, one event.
    page = client.get(f"/admin/onboarding/{draft_id}").get_data(as_text=True)
    assert 'data-step="connect_provider"' in page and "Simulated tenant needs no settings." in page
    assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    draft = draft_row(app, draft_id)
    with app.app_context():
        tenant = db.session.get(Tenant, draft.tenant_id)
        assert (tenant.name, tenant.external_id, tenant.status, tenant.workspace_id) == (
            "Contoso Ltd", GUID, "onboarding", ws.id)
        conn = db.session.scalars(select(ProviderConnection).where(ProviderConnection.tenant_id == tenant.id)).one()
        assert conn.provider == "simulated"
        tenant_id = tenant.id
    assert (draft.checkpoint, draft.lifecycle_state) == ("connect_provider", "provider_connected")
    assert [e.meta["checkpoint_key"] for e in events(app)] == ["connect_provider"]

    # verify_access: a run through the seam; the checkpoint completes when it succeeded.
    assert post(client, draft_id, "verify").status_code == 302
    assert queued_jobs(app) == 1
    assert len(events(app)) == 1  # started is not completed
    live = client.get(f"/admin/onboarding/{draft_id}/verify/live").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in live and "Operation run #" in live
    drain()
    draft = draft_row(app, draft_id)
    assert (draft.checkpoint, draft.lifecycle_state) == ("verify_access", "access_verified")
    assert draft.verification["ok"] is True and draft.verification["missing_permissions"] == []
    with app.app_context():
        run = db.session.get(OperationRun, draft.verification_run_id)
        assert (run.type, run.status, run.outcome, run.tenant_id, run.initiator_user_id) == (
            service.VERIFY_KEY, "completed", "succeeded", tenant_id, manager.id)
        assert run.context["source"] == "tenant_ui" and run.context["draft_id"] == draft_id
        assert run.summary_counts["permissions_missing"] == 0 and run.summary_counts["role_assignments"] == 3
        methods = [m for m, _, _ in sim.calls(tenant_id)]
        assert "granted_permissions" in methods and "directory_role_assignments" in methods
    live = client.get(f"/admin/onboarding/{draft_id}/verify/live")
    assert live.headers["HX-Redirect"] == f"/admin/onboarding/{draft_id}"
    review = client.get(f"/admin/onboarding/{draft_id}").get_data(as_text=True)
    assert 'data-step="ready_for_activation"' in review and 'data-verification="ok"' in review
    assert client.get(f"/admin/t/{tenant_id}/runs/{run.id}").status_code == 200  # the ledger's page

    # ready_for_activation, then activated (after a mistyped name: field error, no event).
    assert post(client, draft_id, "ready").status_code == 302
    wrong = post(client, draft_id, "activate", tenant_name="Contoso")
    assert wrong.status_code == 400
    html = wrong.get_data(as_text=True)
    assert 'id="tenant_name-error"' in html and "Type the tenant name exactly as shown: Contoso Ltd" in html
    assert len(events(app)) == 3
    assert post(client, draft_id, "activate", tenant_name="Contoso Ltd").status_code == 302
    draft = draft_row(app, draft_id)
    assert (draft.checkpoint, draft.lifecycle_state) == ("activated", "activated") and draft.activated_at
    with app.app_context():
        assert db.session.get(Tenant, tenant_id).status == "active"  # in service from now on
    assert set(draft.completed) == set(service.CHECKPOINTS)

    # Exactly one event per tenant-linked checkpoint, with exactly the allowed metadata.
    rows = events(app)
    assert [(e.meta["checkpoint_key"], e.meta["lifecycle_state"]) for e in rows] == [
        ("connect_provider", "provider_connected"), ("verify_access", "access_verified"),
        ("ready_for_activation", "ready_for_activation"), ("activated", "activated")]
    for e in rows:
        assert set(e.meta) == ALLOWED
        assert isinstance(datetime.fromisoformat(e.meta["completed_at"]), datetime)
        assert (e.workspace_id, e.tenant_id, e.user_id, e.feature_area) == (ws.id, tenant_id, manager.id, "onboarding")
        assert (e.subject_type, e.subject_id) == ("onboarding_draft", str(draft_id))
        text = serialized(e)
        assert "@" not in text and manager.name not in text and "Contoso" not in text
    # The start seam recorded its own event for the verification start, once.
    assert [e.meta["operation_type"] for e in events(app, "product.operations.started")] == [service.VERIFY_KEY]

    # Every transition is audited, with the draft and its checkpoint.
    audited = audit_rows(app, "onboarding.checkpoint_completed")
    assert [(a.meta["draft_id"], a.meta["checkpoint"]) for a in audited] == [
        (draft_id, c) for c in service.CHECKPOINTS]
    assert [a.tenant_id for a in audited] == [None] + [tenant_id] * 4
    assert audited[2].actor_id == manager.id  # completed by the run's hook, on the starter's behalf

    # Page renders record nothing.
    for url in ("/admin/onboarding/", f"/admin/onboarding/{draft_id}", f"/admin/onboarding/{draft_id}/verify/live",
                "/admin/"):
        assert client.get(url).status_code == 200
    listing = client.get("/admin/onboarding/").get_data(as_text=True)
    assert f'data-draft="{draft_id}"' in listing and 'data-state="activated"' in listing
    assert 'data-progress="5"' in listing
    assert len(events(app)) == 4


def test_resaves_and_repeated_submits_record_nothing(app, world, drain):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = draft_id_of(identify(client, "Contoso", GUID))

    # identify again, before a tenant exists: details change, the checkpoint does not.
    edit = client.get(f"/admin/onboarding/{draft_id}?step=identify").get_data(as_text=True)
    assert 'value="Contoso"' in edit and f'value="{GUID}"' in edit
    assert post(client, draft_id, "identify", display_name="Contoso Ltd", external_id=GUID).status_code == 302
    assert post(client, draft_id, "identify", display_name="Contoso Ltd", external_id=GUID).status_code == 302
    assert draft_row(app, draft_id).display_name == "Contoso Ltd"
    assert [a.meta["changed"] for a in audit_rows(app, "onboarding.draft_updated")] == [["display_name"]]
    assert events(app) == []

    assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    assert len(events(app)) == 1
    # connect again (settings re-saved before verification): no checkpoint change.
    assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    assert count(app, Tenant) == 1 and len(events(app)) == 1
    # identify is locked once the tenant exists.
    assert post(client, draft_id, "identify", display_name="X", external_id=GUID).status_code == 400

    # Verify twice while queued: one run ("already queued"), then one checkpoint.
    assert post(client, draft_id, "verify").status_code == 302
    assert post(client, draft_id, "verify").status_code == 302
    assert count(app, OperationRun) == 1 and queued_jobs(app) == 1
    drain()
    assert len(events(app)) == 2
    assert post(client, draft_id, "verify").status_code == 302  # already verified: no new run
    assert count(app, OperationRun) == 1
    assert post(client, draft_id, "connect", provider="simulated").status_code == 400  # locked after verification

    for _ in range(2):
        assert post(client, draft_id, "ready").status_code == 302
    for _ in range(2):
        assert post(client, draft_id, "activate", tenant_name="Contoso Ltd").status_code == 302
    assert [e.meta["checkpoint_key"] for e in events(app)] == [
        "connect_provider", "verify_access", "ready_for_activation", "activated"]


def test_invalid_and_duplicate_guids_are_field_errors_and_create_nothing(app, world, factory):
    ws, other, manager = world
    make_tenant(app, other, "Existing", "AAAAAAAA-1111-2222-3333-444444444444")
    client = signed_in(app, "admin", manager.email)

    cases = [
        ("Contoso", "not-a-guid", "Enter the Entra tenant ID as a GUID"),
        ("Contoso", "", "Enter the tenant&#39;s Entra tenant ID (a GUID)."),
        ("Contoso", "aaaaaaaa-1111-2222-3333-444444444444", "A tenant with this Entra tenant ID already exists."),
        ("", GUID, "Enter the tenant&#39;s display name."),
    ]
    for name, guid, message in cases:
        r = identify(client, name, guid)
        html = r.get_data(as_text=True)
        assert r.status_code == 400, (name, guid)
        assert message in html and 'class="field-error"' in html and 'aria-invalid="true"' in html
    assert count(app, OnboardingDraft) == 0

    first = draft_id_of(identify(client, "Contoso", GUID))
    dup = identify(client, "Contoso again", GUID.upper())
    assert dup.status_code == 400
    assert "Another onboarding draft already uses this Entra tenant ID." in dup.get_data(as_text=True)
    # Re-saving a draft with its own GUID is fine; another draft's GUID is not.
    second = draft_id_of(identify(client, "Fabrikam", "22222222-3333-4444-5555-666666666666"))
    taken = post(client, second, "identify", display_name="Fabrikam", external_id=GUID)
    assert taken.status_code == 400 and "Another onboarding draft" in taken.get_data(as_text=True)
    assert post(client, first, "identify", display_name="Contoso", external_id=GUID).status_code == 302
    assert count(app, OnboardingDraft) == 2 and count(app, Tenant) == 1 and events(app) == []

    # A tenant created elsewhere meanwhile: connect refuses, nothing half-written.
    make_tenant(app, ws, "Sneaky", GUID)
    r = post(client, first, "connect", provider="simulated")
    assert r.status_code == 400 and "already exists; nothing was created" in r.get_data(as_text=True)
    draft = draft_row(app, first)
    assert (draft.checkpoint, draft.tenant_id) == ("identify", None)
    assert count(app, Tenant) == 2 and count(app, ProviderConnection) == 0 and events(app) == []

    # Unknown provider and missing CSRF token: 400 with a message, nothing written.
    bad = post(client, second, "connect", provider="nope")
    assert bad.status_code == 400 and "Choose one of the installed providers." in bad.get_data(as_text=True)
    no_csrf = client.post("/admin/onboarding/", data={"display_name": "X", "external_id": GUID_MISSING})
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.get_data(as_text=True)
    assert count(app, OnboardingDraft) == 2 and count(app, Tenant) == 2


def test_operators_get_403_and_non_members_404(app, world, factory):
    ws, other, manager = world
    operator = factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    readonly = factory.user(email="readonly@example.test", memberships=[(ws, "readonly")])
    stranger = factory.user(email="stranger@example.test", memberships=[(other, "owner")])
    draft_id = draft_id_of(identify(signed_in(app, "admin", manager.email), "Contoso", GUID))

    for user in (operator, readonly):
        client = signed_in(app, "admin", user.email)
        assert "Onboard a tenant" not in client.get("/admin/").get_data(as_text=True)
        assert client.get("/admin/onboarding/").status_code == 403
        assert client.get("/admin/onboarding/new").status_code == 403
        assert identify(client, "Mine", GUID_MISSING).status_code == 403
        assert client.get(f"/admin/onboarding/{draft_id}").status_code == 403
        assert post(client, draft_id, "connect", provider="simulated").status_code == 403

    client = signed_in(app, "admin", stranger.email)
    assert client.get("/admin/onboarding/").status_code == 200  # their own workspace
    for url in (f"/admin/onboarding/{draft_id}", f"/admin/onboarding/{draft_id}/verify/live",
                "/admin/onboarding/9999"):
        assert client.get(url).status_code == 404
    for step in ("identify", "connect", "verify", "ready", "activate"):
        assert post(client, draft_id, step, provider="simulated").status_code == 404
    assert f'data-draft="{draft_id}"' not in client.get("/admin/onboarding/").get_data(as_text=True)

    anonymous = app.test_client()
    assert anonymous.get("/admin/onboarding/").status_code == 302
    assert draft_row(app, draft_id).checkpoint == "identify" and count(app, Tenant) == 0


def test_failed_verification_completes_nothing_and_can_be_retried(app, world, drain, monkeypatch):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = walk_to_verify(app, client)

    def refuse(self):
        raise ProviderError("auth_failed", "The vendor refused our credentials.")

    with monkeypatch.context() as m:
        m.setattr(sim.SimulatedClient, "granted_permissions", refuse)
        draft = verify(app, client, draft_id, drain)
    assert (draft.checkpoint, draft.verification) == ("connect_provider", None)
    with app.app_context():
        run = db.session.get(OperationRun, draft.verification_run_id)
        assert (run.outcome, run.failure_summary[0]["reason_code"]) == ("failed", "auth_failed")
    page = client.get(f"/admin/onboarding/{draft_id}").get_data(as_text=True)
    assert 'data-failure="auth_failed"' in page and "Verify again" in page
    assert [e.meta["checkpoint_key"] for e in events(app)] == ["connect_provider"]

    draft = verify(app, client, draft_id, drain)  # a new run; the provider answers now
    assert draft.checkpoint == "verify_access" and draft.verification_run_id != run.id
    assert count(app, OperationRun) == 2
    assert [e.meta["checkpoint_key"] for e in events(app)] == ["connect_provider", "verify_access"]


def test_missing_permissions_are_shown_and_must_be_acknowledged(app, world, drain):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = draft_id_of(identify(client, "Woodgrove", GUID_MISSING))
    assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    draft = verify(app, client, draft_id, drain)
    assert draft.checkpoint == "verify_access"  # the run succeeded: the result is a finding, not a failure
    assert draft.verification["ok"] is False
    assert draft.verification["missing_permissions"] == ["Policy.ReadWrite.ConditionalAccess"]
    review = client.get(f"/admin/onboarding/{draft_id}").get_data(as_text=True)
    assert 'data-verification="missing"' in review and "Policy.ReadWrite.ConditionalAccess" in review

    refused = post(client, draft_id, "ready")
    assert refused.status_code == 400
    assert "Acknowledge the missing permissions to continue." in refused.get_data(as_text=True)
    assert draft_row(app, draft_id).checkpoint == "verify_access" and len(events(app)) == 2
    assert post(client, draft_id, "ready", acknowledge="y").status_code == 302
    assert draft_row(app, draft_id).checkpoint == "ready_for_activation" and len(events(app)) == 3


def test_skipping_ahead_is_refused(app, world):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = draft_id_of(identify(client))
    for step, data in (("verify", {}), ("ready", {}), ("activate", {"tenant_name": "Contoso Ltd"})):
        assert post(client, draft_id, step, **data).status_code == 400
    assert draft_row(app, draft_id).checkpoint == "identify" and count(app, OperationRun) == 0


def test_telemetry_failure_does_not_break_the_step(app, world, drain, monkeypatch):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = draft_id_of(identify(client))

    def broken(*args, **kwargs):
        raise RuntimeError("telemetry store down")

    with monkeypatch.context() as m:  # the recorder's own failure path (a white-box test)
        m.setattr("tenantpilot.telemetry.write", broken)
        assert post(client, draft_id, "connect", provider="simulated").status_code == 302
    assert draft_row(app, draft_id).checkpoint == "connect_provider" and count(app, Tenant) == 1
    with app.app_context():  # not dropped: spooled for the scheduler's replay
        assert spooled("telemetry") == 1

    # Even a recorder that broke its never-raise contract (the seam's own event is left alone).
    monkeypatch.setattr(service, "record_event", broken)
    verify(app, client, draft_id, drain)
    assert post(client, draft_id, "ready").status_code == 302
    assert draft_row(app, draft_id).checkpoint == "ready_for_activation"
    assert events(app) == []
    assert len(audit_rows(app, "onboarding.checkpoint_completed")) == 4
    with app.app_context():
        assert replay_spooled_telemetry() == 1
    assert [e.meta["checkpoint_key"] for e in events(app)] == ["connect_provider"]


def test_a_lost_run_completed_hook_is_recovered_by_continue(app, world, drain, monkeypatch):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = walk_to_verify(app, client)
    with monkeypatch.context() as m:
        m.setattr(service, "on_run_completed", lambda run: None)  # the worker died after the commit
        draft = verify(app, client, draft_id, drain)
    assert draft.checkpoint == "connect_provider" and draft.verification["ok"] is True
    with app.app_context():  # past the grace period: the page stops waiting and offers Continue
        run = db.session.get(OperationRun, draft.verification_run_id)
        run.completed_at = run.completed_at.replace(year=run.completed_at.year - 1)
        db.session.commit()
    page = client.get(f"/admin/onboarding/{draft_id}").get_data(as_text=True)
    assert ">Continue</button>" in page
    assert post(client, draft_id, "verify").status_code == 302
    assert post(client, draft_id, "verify").status_code == 302
    assert draft_row(app, draft_id).checkpoint == "verify_access" and count(app, OperationRun) == 1
    assert [e.meta["checkpoint_key"] for e in events(app)] == ["connect_provider", "verify_access"]


def test_the_installed_distribution_loads_with_its_migration(make_app):
    registry = make_app().extensions["tenantpilot"].registry
    assert registry.owners[("event", EVENT)] == "onboarding"
    assert registry.owners[("operation type", service.VERIFY_KEY)] == "onboarding"
    assert registry.operation_types[service.VERIFY_KEY].tenant_capabilities == ("tenant.manage",)


def test_draft_tenant_is_in_no_fleet_run_until_activated(app, world, factory, drain):
    """SPEC 3 step 2: fleet runbooks and their preflights count active tenants only. A
    tenant still being onboarded is verified by its own run and nothing else."""

    ws, _, manager = world
    live = factory.tenant(ws, "Live Co")
    client = signed_in(app, "admin", manager.email)
    draft_id = walk_to_verify(app, client)
    draft = draft_row(app, draft_id)
    with app.app_context():
        assert [t for t, _ in tenant_universe(Scope("all_tenants"))] == [live.id]
        assert [t for t, _ in tenant_universe(Scope("workspace", ws.id))] == [live.id]
    # Its own verification runs on it.
    assert verify(app, client, draft_id, drain).checkpoint == "verify_access"
    assert post(client, draft_id, "ready").status_code == 302
    assert post(client, draft_id, "activate", tenant_name="Contoso Ltd").status_code == 302
    with app.app_context():
        assert sorted(t for t, _ in tenant_universe(Scope("all_tenants"))) == sorted([live.id, draft.tenant_id])


def test_tenant_archived_during_onboarding_is_not_activated(app, world, drain):
    _, _, manager = world
    client = signed_in(app, "admin", manager.email)
    draft_id = walk_to_verify(app, client)
    verify(app, client, draft_id, drain)
    assert post(client, draft_id, "ready").status_code == 302
    tenant_id = draft_row(app, draft_id).tenant_id
    with app.app_context():
        db.session.get(Tenant, tenant_id).status = "archived"
        db.session.commit()
    r = post(client, draft_id, "activate", tenant_name="Contoso Ltd")
    assert r.status_code == 400 and "archived" in r.get_data(as_text=True)
    assert draft_row(app, draft_id).checkpoint == "ready_for_activation"
    with app.app_context():
        assert db.session.get(Tenant, tenant_id).status == "archived"
