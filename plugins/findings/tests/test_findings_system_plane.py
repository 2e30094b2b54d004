"""The runbook on the platform plane (/system/ops/runbooks): the card, preflight and
confirm steps show the plugin's fragments, and a confirmed start runs the backfill."""
import re

import pytest
from sqlalchemy import select

from findings_helpers import add, finding
from tenantpilot.testing import csrf_from, login, post_form, signed_in
from tenantpilot_findings import plugin
from tests.helpers import run_row
from tenantpilot.sdk import OperationRun, db


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin], FINDINGS_SLA_DAYS={"critical": 2})


def test_operator_preflights_confirms_and_runs_the_backfill(app, factory, drain):
    ws = factory.workspace()
    tenant, clean = factory.tenant(ws), factory.tenant(ws)
    add(app, finding(tenant.id, status="open"), finding(tenant.id, status="fixed"),
        finding(clean.id, status="resolved", first_seen_at=finding(0)["created_at"],
                last_seen_at=finding(0)["created_at"]))
    factory.platform_user(email="ops@example.test")  # every registered capability
    client = app.test_client()
    assert login(client, "system", "ops@example.test", "platform-pass-123").status_code == 302

    card = client.get("/system/ops/runbooks").get_data(as_text=True)
    assert 'data-runbook="findings.lifecycle.backfill"' in card and "Findings lifecycle backfill" in card
    assert "critical 2 days, high 7 days, medium 30 days, low 90 days after first seen" in card  # configured SLA

    form = client.get("/system/ops/runbooks/findings.lifecycle.backfill/preflight").get_data(as_text=True)
    resp = client.post("/system/ops/runbooks/findings.lifecycle.backfill/preflight",
                       data={"kind": "all_tenants", "workspace_id": 0, "csrf_token": csrf_from(form)})
    assert resp.status_code == 302
    confirm = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert re.search(r'data-figure="affected">2<', confirm)
    assert "2 tenants in scope, 1 with findings to repair; 1 of 3 findings are already clean" in confirm

    resp = client.post(resp.headers["Location"], data={
        "csrf_token": csrf_from(confirm), "confirmation": "BACKFILL", "reason_code": "DATA_REPAIR",
        "reason_text": "Repair legacy findings after import"})
    # All tenants of a runbook that changes data waits for a second operator (issue 16).
    assert resp.status_code == 302 and "/system/ops/approvals/" in resp.headers["Location"]
    approval_url = resp.headers["Location"]
    factory.platform_user(email="approver@example.test")
    approver = signed_in(app, "system", "approver@example.test")
    assert post_form(approver, f"{approval_url}/approve", {"confirmation": "BACKFILL"},
                     page=approval_url).status_code == 302
    with app.app_context():
        run = db.session.scalars(select(OperationRun)).one()
        assert run.context["source"] == "system_ui" and run.context["preflight"]["affected_count"] == 2
    drain(app)
    assert run_row(app, run.id).summary_counts == {"total": 3, "processed": 3, "updated": 2, "skipped": 1,
                                                   "tenants": 2, "failed": 0}
    detail = client.get(f"/system/ops/runs/{run.id}").get_data(as_text=True)
    assert "data-findings-run" in detail and "<strong>2</strong> repaired" in detail and "of 3 scanned" in detail
