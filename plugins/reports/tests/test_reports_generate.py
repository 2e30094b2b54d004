"""Stored reports (SPEC 5/6): both report types through the start seam and a real worker,
the unchanged fingerprint, permission findings, and the `product.stored_report.created`
telemetry rules (one per report a person's run stored; none for system runs, unchanged
reports or failures)."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from reports_helpers import (ALL_REQUIRED, POSTURE, ROLES, connect, events, generate, rename_user, reports,
                             runs_of, set_permissions, set_roles, signed_in)
from tenantpilot.api import ProviderError
from tenantpilot.testing import Factory, ProductUsageEvent
from tenantpilot_findings import plugin as findings
from tenantpilot_findings.models import Finding
from tenantpilot_reports import plugin, service
from tenantpilot_simulated import plugin as simulated
from tenantpilot_simulated.client import SimulatedClient
from tests.helpers import count
from tenantpilot.sdk import Actor, OperationRun, Scope, db, start_operation

ROLE_DATA = [("Global Administrator", "p-1", "user"), ("Global Administrator", "p-2", "user"),
             ("Intune Administrator", "p-3", "group"), ("Security Reader", "p-4", "user"),
             ("Security Reader", "p-5", "user"), ("Security Reader", "p-6", "servicePrincipal")]


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, simulated, findings])


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Contoso Holdings")
    tenant = factory.tenant(ws, name="Contoso Production")
    unconnected = factory.tenant(ws, name="Contoso Sandbox")
    connect(app, tenant)
    set_permissions(app, tenant, ALL_REQUIRED)
    set_roles(app, tenant, ROLE_DATA)
    users = {role: factory.user(email=f"{role}@contoso.example", memberships=[(ws, role)])
             for role in ("owner", "manager", "operator", "readonly")}
    users["outsider"] = factory.user(email="outsider@fabrikam.example",
                                     memberships=[(factory.workspace("Fabrikam"), "owner")])
    rename_user(app, users["operator"], "Olivia Operator")
    return ws, tenant, unconnected, users


def both(client, tenant, drain):
    for report_type in (POSTURE, ROLES):
        assert generate(client, tenant, report_type).status_code == 302
    drain()


def open_findings(app, tenant):
    with app.app_context():
        rows = db.session.scalars(select(Finding).where(Finding.tenant_id == tenant.id, Finding.type == "permission",
                                                        Finding.status == "new").order_by(Finding.fingerprint)).all()
        for r in rows:
            db.session.expunge(r)
        return rows


def test_both_reports_are_stored_once_each_with_exactly_one_event_each(app, world, drain):
    ws, tenant, _, users = world
    client = signed_in(app, "admin", "operator@contoso.example")
    both(client, tenant, drain)

    stored = {r.report_type: r for r in reports(app, tenant)}
    assert set(stored) == {POSTURE, ROLES}
    posture, roles = stored[POSTURE], stored[ROLES]
    assert posture.summary == {"required": ALL_REQUIRED, "required_count": 5, "granted_count": 5, "missing_count": 0,
                               "missing": [], "other_granted_count": 0}
    assert roles.summary == {"assignment_count": 6, "role_count": 3,
                             "roles": {"Security Reader": 3, "Global Administrator": 2, "Intune Administrator": 1},
                             "principal_types": {"group": 1, "servicePrincipal": 1, "user": 4},
                             "privileged_assignment_count": 2}
    assert "p-1" not in json.dumps(roles.summary)  # no principals in the summary
    for report in (posture, roles):
        assert len(report.fingerprint) == 64 and report.operation_run_id is not None
        run = runs_of(app, tenant, report.report_type)[-1]
        assert (run.id, run.status, run.outcome) == (report.operation_run_id, "completed", "succeeded")
        assert run.summary_counts["stored"] == 1 and "unchanged" not in run.summary_counts
    assert runs_of(app, tenant, POSTURE)[-1].summary_counts == {
        "items": 5, "stored": 1, "findings_created": 0, "findings_resolved": 0, "tenants": 1, "failed": 0}

    rows = events(app)
    assert sorted(r.meta["report_type"] for r in rows) == [ROLES, POSTURE]
    for row in rows:
        assert set(row.meta) == {"report_type"}
        assert (row.workspace_id, row.tenant_id, row.user_id) == (ws.id, tenant.id, users["operator"].id)
        assert row.feature_area == "stored_reports" and row.subject_type == "stored_report"
        assert row.subject_id == str(stored[row.meta["report_type"]].id)


def test_unchanged_data_stores_no_new_report_and_records_no_new_event(app, world, drain):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    both(client, tenant, drain)
    first = [r.id for r in reports(app)]

    both(client, tenant, drain)
    assert [r.id for r in reports(app)] == first
    assert len(events(app)) == 2
    for report_type in (POSTURE, ROLES):
        runs = runs_of(app, tenant, report_type)
        assert len(runs) == 2
        assert (runs[-1].status, runs[-1].outcome) == ("completed", "succeeded")
        assert runs[-1].summary_counts["unchanged"] == 1 and "stored" not in runs[-1].summary_counts
    html = client.get(f"/admin/t/{tenant.id}/reports").get_data(as_text=True)
    assert html.count('data-run-result="unchanged"') == 2


def test_a_role_handed_to_someone_else_is_a_change_even_with_equal_counts(app, world, drain):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    generate(client, tenant, ROLES)
    drain()
    set_roles(app, tenant, [("Global Administrator", "p-99", "user")] + ROLE_DATA[1:])
    generate(client, tenant, ROLES)
    drain()
    first, second = reports(app, tenant)
    assert first.summary == second.summary and first.fingerprint != second.fingerprint
    assert len(events(app)) == 2


def test_missing_permissions_store_a_new_report_and_open_one_finding_each(app, world, drain):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    generate(client, tenant, POSTURE)
    drain()
    assert open_findings(app, tenant) == []

    granted = [p for p in ALL_REQUIRED if p not in ("Policy.Read.All", "RoleManagement.Read.Directory")]
    set_permissions(app, tenant, granted + ["User.Read.All"])
    generate(client, tenant, POSTURE)
    drain()
    latest = reports(app, tenant)[-1]
    assert len(reports(app, tenant)) == 2
    assert latest.summary["missing"] == ["Policy.Read.All", "RoleManagement.Read.Directory"]
    s = latest.summary
    assert (s["missing_count"], s["granted_count"], s["other_granted_count"]) == (2, 3, 1)
    found = open_findings(app, tenant)
    assert [f.fingerprint for f in found] == ["permission:missing:Policy.Read.All",
                                              "permission:missing:RoleManagement.Read.Directory"]
    for f in found:
        assert (f.type, f.severity, f.status) == ("permission", "high", "new")
        assert f.first_seen_at == f.last_seen_at == f.created_at
        assert f.due_at == f.first_seen_at + timedelta(days=7)  # the findings SLA for high
        assert f.resolved_at is None and "Missing permission" in f.title
    assert runs_of(app, tenant, POSTURE)[-1].summary_counts["findings_created"] == 2

    # Same data again: no report, no event, no duplicate finding — just seen again.
    generate(client, tenant, POSTURE)
    drain()
    again = open_findings(app, tenant)
    assert len(reports(app, tenant)) == 2 and len(events(app)) == 2
    assert [f.id for f in again] == [f.id for f in found]
    assert all(a.last_seen_at >= f.last_seen_at for a, f in zip(again, found))
    assert runs_of(app, tenant, POSTURE)[-1].summary_counts["findings_created"] == 0

    # One more missing: a new report, one more finding, still no duplicates.
    set_permissions(app, tenant, [p for p in granted if p != "Policy.ReadWrite.ConditionalAccess"])
    generate(client, tenant, POSTURE)
    drain()
    assert len(reports(app, tenant)) == 3 and len(events(app)) == 3
    assert [f.fingerprint.rsplit(":", 1)[1] for f in open_findings(app, tenant)] == [
        "Policy.Read.All", "Policy.ReadWrite.ConditionalAccess", "RoleManagement.Read.Directory"]

    # Everything granted again: the findings are resolved by the next report.
    set_permissions(app, tenant, ALL_REQUIRED)
    generate(client, tenant, POSTURE)
    drain()
    assert open_findings(app, tenant) == []
    with app.app_context():
        resolved = db.session.scalars(select(Finding).where(Finding.tenant_id == tenant.id)).all()
        assert len(resolved) == 3
        assert {(f.status, f.resolution) for f in resolved} == {("resolved", "permission_granted")}
    assert runs_of(app, tenant, POSTURE)[-1].summary_counts["findings_resolved"] == 3


def test_a_legacy_open_finding_for_the_permission_is_not_duplicated(app, world, drain):
    _, tenant, _, _ = world
    with app.app_context():
        db.session.add(Finding(tenant_id=tenant.id, type="permission", severity="high", status="open",
                               title="Legacy: Policy.Read.All missing",
                               fingerprint="permission:missing:Policy.Read.All"))
        db.session.commit()
    set_permissions(app, tenant, [p for p in ALL_REQUIRED if p != "Policy.Read.All"])
    generate(signed_in(app, "admin", "operator@contoso.example"), tenant, POSTURE)
    drain()
    assert count(app, Finding, Finding.tenant_id == tenant.id) == 1


def test_without_the_findings_plugin_the_report_is_stored_and_no_finding_is_made(make_app, drain):
    app = make_app(plugins=[plugin, simulated])
    factory = Factory(app)
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    connect(app, tenant)
    set_permissions(app, tenant, ALL_REQUIRED[:2])
    factory.user(email="op@example.test", memberships=[(ws, "operator")])
    generate(signed_in(app, "admin", "op@example.test"), tenant, POSTURE)
    drain(app)
    [report] = reports(app, tenant)
    assert report.summary["missing_count"] == 3
    assert runs_of(app, tenant, POSTURE)[-1].summary_counts == {"items": 2, "stored": 1, "tenants": 1, "failed": 0}
    assert count(app, Finding) == 0
    assert len(events(app)) == 1


def test_a_system_initiated_run_stores_the_report_and_records_nothing(app, world, drain):
    _, tenant, _, _ = world
    with app.app_context():
        result = service.start_report(tenant.id, ROLES, Actor.system("Scheduler"), source="cli")
        assert result.status == "started"
        # The same through the seam directly, for the other type.
        assert start_operation("report.permission_posture", scope=Scope("single_tenant", tenant_id=tenant.id),
                          actor=Actor.system(), source="api").status == "started"
    drain()
    assert {r.report_type for r in reports(app, tenant)} == {POSTURE, ROLES}
    assert events(app, name=None) == []  # neither stored_report.created nor operations.started


def test_a_tenant_without_a_connection_fails_the_run_and_stores_and_records_nothing(app, world, drain):
    _, _, unconnected, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    assert generate(client, unconnected, POSTURE).status_code == 302
    drain()
    [run] = runs_of(app, unconnected, POSTURE)
    assert (run.status, run.outcome) == ("completed", "failed")
    assert run.failure_summary == [{"reason_code": "not_connected", "tenant_id": unconnected.id,
                                    "message": "This tenant has no provider connection."}]
    assert reports(app) == [] and events(app) == []
    html = client.get(f"/admin/t/{unconnected.id}/reports").get_data(as_text=True)
    assert "This tenant has no provider connection." in html and 'data-run-status="failed"' in html


def test_a_provider_error_fails_the_run_and_stores_and_records_nothing(app, world, drain, monkeypatch):
    _, tenant, _, _ = world

    def throttled(self):
        raise ProviderError("throttled", "The provider is throttling requests; try again later.")

    monkeypatch.setattr(SimulatedClient, "directory_role_assignments", throttled)
    generate(signed_in(app, "admin", "operator@contoso.example"), tenant, ROLES)
    drain()
    [run] = runs_of(app, tenant, ROLES)
    assert run.outcome == "failed" and run.failure_summary[0]["reason_code"] == "throttled"
    assert reports(app) == [] and events(app) == []


def test_a_second_click_while_queued_is_deduplicated_and_stores_one_report(app, world, drain):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    generate(client, tenant, POSTURE)
    second = generate(client, tenant, POSTURE)
    assert "already queued" in client.get(second.headers["Location"]).get_data(as_text=True)
    drain()
    assert len(runs_of(app, tenant, POSTURE)) == 1
    assert len(reports(app)) == 1 and len(events(app)) == 1


def test_event_rows_carry_no_email_user_name_or_tenant_name(app, world, drain):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    both(client, tenant, drain)
    set_permissions(app, tenant, ALL_REQUIRED[1:])
    generate(client, tenant, POSTURE)
    drain()
    with app.app_context():
        rows = db.session.scalars(select(ProductUsageEvent)).all()
        assert len(rows) == 6  # 3 stored reports + 3 operation starts
        text = json.dumps([{c.key: getattr(r, c.key) for c in ProductUsageEvent.__mapper__.column_attrs}
                           for r in rows], default=str)
    for forbidden in ("@", "Olivia", "Operator", "Contoso", "operator@contoso.example"):
        assert forbidden not in text


@pytest.mark.parametrize("role, status", [("owner", 302), ("manager", 302), ("operator", 302), ("readonly", 403),
                                          ("outsider", 404)])
def test_who_may_generate(app, world, drain, role, status):
    _, tenant, _, users = world
    client = signed_in(app, "admin", users[role].email)
    assert generate(client, tenant, POSTURE).status_code == status
    drain()
    assert count(app, OperationRun, OperationRun.tenant_id == tenant.id) == (1 if status == 302 else 0)
    assert len(reports(app)) == (1 if status == 302 else 0)


def test_an_unknown_report_type_or_a_missing_token_is_refused(app, world):
    _, tenant, _, _ = world
    client = signed_in(app, "admin", "operator@contoso.example")
    assert generate(client, tenant, "everything").status_code == 400
    assert client.post(f"/admin/t/{tenant.id}/reports/generate", data={"report_type": POSTURE}).status_code == 400
    assert count(app, OperationRun) == 0
