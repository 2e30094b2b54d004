"""A restore through the microsoft_graph provider against the local HTTPS stub: token,
paging, a 429 with Retry-After retried, a 4xx failing only its item, a pause that makes
no request at all, and no secret or token anywhere it could leak."""
import logging

import pytest
from sqlalchemy import select

from restore_helpers import capture, confirm_data, pause, restore_run_id, signed_in
from tenantpilot_graph import client as graph_client
from tenantpilot_graph import plugin as graph
from tenantpilot_graph.stub import FAULT_BODY_MARKER, GraphStub
from tenantpilot_restore import plugin
from tenantpilot_restore.models import BackupItem, RestoreRun, RestoreRunItem
from tests.helpers import count, queued_jobs
from tenantpilot.sdk import AuditLog, OperationRun, ProviderConnection, db

SECRET_ENV = "TENANTPILOT_PROVIDER_SECRET_TP_TEST_RESTORE_GRAPH"
COLLECTION = "/deviceManagement/deviceConfigurations"


@pytest.fixture
def stub():
    with GraphStub(page_size=2) as running:
        yield running
    graph_client.clear_caches()


@pytest.fixture
def app(make_app, stub, monkeypatch):
    for name in graph_client.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(SECRET_ENV, stub.client_secret)
    return make_app(plugins=[plugin, graph], **stub.config(), TENANTPILOT_GRAPH_BACKOFF=0.01)


@pytest.fixture
def world(app, factory, stub):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Graph Tenant")
    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant.id, provider="microsoft_graph", secret_ref=f"env:{SECRET_ENV}",
                                          settings={"tenant_guid": stub.tenant_guid, "client_id": stub.client_id}))
        db.session.commit()
    factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    stub.grant("DeviceManagementConfiguration.ReadWrite.All", "Policy.Read.All")
    ids = {name: stub.add_policy("device_configuration", name, "#microsoft.graph.windows10GeneralConfiguration",
                                 passwordRequired=True, passwordMinimumLength=12)
           for name in ("Baseline A", "Baseline B", "Baseline C")}
    ids["MFA"] = stub.add_policy("conditional_access", "MFA", state="enabled")
    return ws, tenant, ids


def leaks(app, caplog, *needles) -> list[str]:
    """Where any needle shows up: log records, audit rows, run contexts and failures,
    restore item messages."""
    with app.app_context():
        places = {"logs": caplog.text}
        places["audit"] = repr([(a.summary, a.meta) for a in db.session.scalars(select(AuditLog))])
        places["runs"] = repr([(r.context, r.failure_summary) for r in db.session.scalars(select(OperationRun))])
        places["items"] = repr([(i.message, i.preview_changes) for i in db.session.scalars(select(RestoreRunItem))])
    return [f"{needle[:6]}… in {where}" for needle in needles for where, text in places.items() if needle in text]


def test_restore_through_graph_retries_429_and_fails_only_the_rejected_item(app, world, stub, drain, caplog):
    caplog.set_level(logging.DEBUG)
    _, tenant, ids = world
    client = signed_in(app, "admin", "manager@example.test")
    backup = capture(app, client, tenant, drain)
    assert backup.item_count == 4
    assert len(stub.requests(method="GET", path=COLLECTION)) == 2  # 3 policies, pages of 2
    assert len(stub.token_requests()) == 1
    with app.app_context():
        payloads = {i.name: i.payload for i in db.session.scalars(select(BackupItem))}
    assert payloads["Baseline A"] == {"@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
                                      "displayName": "Baseline A", "passwordRequired": True, "passwordMinimumLength": 12}

    for name in ("Baseline A", "Baseline B", "Baseline C"):  # someone weakened them in the portal
        stub.policies["device_configuration"][ids[name]]["passwordMinimumLength"] = 4
    stub.fail(f"{COLLECTION}/{ids['Baseline A']}", 429, method="PATCH", headers={"Retry-After": "1"})
    stub.fail(f"{COLLECTION}/{ids['Baseline B']}", 400, method="PATCH")

    r = client.post(f"/admin/t/{tenant.id}/restore-runs",
                    data=confirm_data(client, backup.id, tenant_name="Graph Tenant"))
    assert r.status_code == 302
    drain()

    with app.app_context():
        rr = db.session.get(RestoreRun, restore_run_id(r))
        results = {i.name: (i.result, i.reason_code, i.message) for i in rr.items}
        outcome, counts = rr.operation_run.outcome, dict(rr.operation_run.summary_counts)
    assert results["Baseline A"][0] == "applied" and results["Baseline C"][0] == "applied"
    assert results["MFA"][0] == "unchanged"
    assert results["Baseline B"][:2] == ("failed", "invalid_payload")
    assert FAULT_BODY_MARKER not in results["Baseline B"][2]
    assert outcome == "partially_succeeded" and (counts["applied"], counts["items_failed"]) == (2, 1)
    patches_a = stub.requests(method="PATCH", path=f"{COLLECTION}/{ids['Baseline A']}")
    assert [p.status for p in patches_a] == [429, 204]
    assert patches_a[1].at - patches_a[0].at >= 1.0  # Retry-After honoured
    assert stub.policy("device_configuration", ids["Baseline A"])["passwordMinimumLength"] == 12
    assert stub.policy("device_configuration", ids["Baseline B"])["passwordMinimumLength"] == 4
    assert len(stub.token_requests()) == 1  # the token was reused by the restore job
    assert leaks(app, caplog, stub.client_secret, *stub.issued_tokens) == []


def test_a_paused_restore_sends_no_request_to_graph(app, world, stub, drain):
    ws, tenant, _ = world
    client = signed_in(app, "admin", "manager@example.test")
    backup = capture(app, client, tenant, drain)
    pause(app, "workspace", ws.id)
    seen = len(stub.log)
    r = client.post(f"/admin/t/{tenant.id}/restore-runs", data=confirm_data(client, backup.id, tenant_name="Graph Tenant"))
    assert r.status_code == 409 and "Restore execution paused" in r.get_data(as_text=True)
    assert len(stub.log) == seen  # not even a token request
    assert count(app, RestoreRun) == 0 and count(app, OperationRun, OperationRun.type == "restore.execute") == 0
    assert queued_jobs(app) == 0
