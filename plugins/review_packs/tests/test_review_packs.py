"""Review packs over HTTP (SPEC 5, 6): request → operation run → ZIP of JSON + CSV; reuse of
identical packs; exactly one telemetry event per successful request; permissions."""
import json
import sys

import pytest
from sqlalchemy import select

from review_pack_helpers import (NOOP, PERSON, PERSON_EMAIL, TENANT_NAME, NoopOperations, add_findings, csv_rows,
                                 events, json_of, pack, packs, rename, request_pack, signed_in, start_noop,
                                 zip_files)
from tenantpilot_review_packs import plugin, service
from tests.helpers import audit_rows, count
from tenantpilot.sdk import AuditLog, OperationRun, Tenant, db, utcnow
from tenantpilot.testing import ProductUsageEvent


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin, ("rp_test_ops", NoopOperations())])


@pytest.fixture
def world(app, factory):
    ws, other_ws = factory.workspace("Review WS"), factory.workspace("Other WS")
    tenant = factory.tenant(ws, name=TENANT_NAME)
    other = factory.tenant(other_ws, name="Fabrikam Elsewhere")
    manager = factory.user(email=PERSON_EMAIL, memberships=[(ws, "manager")])
    rename(app, manager, PERSON)
    operator = factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    readonly = factory.user(email="readonly@example.test", memberships=[(ws, "readonly")])
    outsider = factory.user(email="outsider@example.test", memberships=[(other_ws, "owner")])
    return {"ws": ws, "tenant": tenant, "other": other, "manager": manager, "operator": operator,
            "readonly": readonly, "outsider": outsider}


def ready_pack(app, client, tenant, drain, **options):
    r = request_pack(client, tenant, **options)
    assert r.status_code == 302, r.get_data(as_text=True)
    drain()
    newest = packs(app, tenant)[-1]
    assert newest.status == "ready", (newest.status, newest.failure_reason)
    return newest


def test_a_request_runs_an_operation_that_builds_a_zip_of_json_and_csv(app, world, drain):
    tenant, manager = world["tenant"], world["manager"]
    add_findings(app, tenant, 3)
    add_findings(app, world["other"], 2, title="Other tenant's secret finding")
    start_noop(app, tenant, manager, drain)  # a run with a person as initiator
    client = signed_in(app, "admin", manager.email)

    r = request_pack(client, tenant)
    assert r.status_code == 302
    queued = packs(app, tenant)
    assert len(queued) == 1 and queued[0].status == "queued" and queued[0].operation_run_id
    assert "is being generated" in client.get(r.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        run = db.session.get(OperationRun, queued[0].operation_run_id)
        assert (run.type, run.tenant_id, run.context["include_operations"], run.context["include_pii"]) == (
            "review_pack.generate", tenant.id, False, False)
    drain()

    p = pack(app, queued[0].id)
    assert p.status == "ready" and p.generated_at is not None
    assert p.row_counts == {"findings": 3, **({"stored_reports": p.row_counts["stored_reports"]}
                                              if "stored_reports" in p.row_counts else {})}
    files = zip_files(app, p.id)
    assert {"manifest.json", "findings.json", "findings.csv"} <= set(files)
    assert "operation_runs.json" not in files and "operation_runs.csv" not in files  # not asked for
    findings = json_of(files["findings.json"])
    assert [f["title"] for f in findings] == ["Setting 0 drifted", "Setting 1 drifted", "Setting 2 drifted"]
    assert [row["title"] for row in csv_rows(files["findings.csv"])] == [f["title"] for f in findings]
    assert set(csv_rows(files["findings.csv"])[0]) == set(findings[0])  # same columns in both formats
    manifest = json_of(files["manifest.json"])
    assert manifest["options"] == {"include_operations": False, "include_pii": False}
    assert manifest["personal_data"] == "excluded" and "requested_by" not in manifest
    assert manifest["sources"]["operation_runs"] == "not_requested"
    assert manifest["tenant"]["name"] == TENANT_NAME and manifest["data_fingerprint"] == p.data_fingerprint
    blob = b"".join(files.values())
    assert PERSON.encode() not in blob and b"@" not in blob and b"secret finding" not in blob
    with app.app_context():
        run = db.session.get(OperationRun, p.operation_run_id)
        assert (run.status, run.outcome, run.summary_counts["findings"]) == ("completed", "succeeded", 3)


def test_operation_runs_only_with_include_operations_and_names_only_with_include_pii(app, world, drain):
    tenant, manager = world["tenant"], world["manager"]
    add_findings(app, tenant, 1)
    noop_run = start_noop(app, tenant, manager, drain)
    client = signed_in(app, "admin", manager.email)

    without_pii = ready_pack(app, client, tenant, drain, ops=True)
    files = zip_files(app, without_pii.id)
    runs = json_of(files["operation_runs.json"])
    assert [r["id"] for r in runs] == [noop_run]  # review pack runs themselves are not listed
    assert runs[0]["type"] == NOOP and runs[0]["outcome"] == "succeeded" and runs[0]["initiator_type"] == "human"
    assert "initiator_name" not in runs[0] and "initiator_user_id" not in runs[0]
    assert "initiator_name" not in csv_rows(files["operation_runs.csv"])[0]
    assert PERSON.encode() not in b"".join(files.values())
    assert b"@" not in b"".join(files.values())

    with_pii = ready_pack(app, client, tenant, drain, ops=True, pii=True)
    assert with_pii.id != without_pii.id  # other options: another pack
    files = zip_files(app, with_pii.id)
    runs = json_of(files["operation_runs.json"])
    assert runs[0]["initiator_name"] == PERSON and runs[0]["initiator_user_id"] == manager.id
    assert csv_rows(files["operation_runs.csv"])[0]["initiator_name"] == PERSON
    manifest = json_of(files["manifest.json"])
    assert manifest["personal_data"] == "included" and manifest["requested_by"] == PERSON
    assert PERSON_EMAIL.encode() not in b"".join(files.values())  # e-mails never, even with PII

    pii_only = ready_pack(app, client, tenant, drain, pii=True)
    assert "operation_runs.json" not in zip_files(app, pii_only.id)


def test_identical_request_while_queued_is_the_same_pack_and_after_ready_is_reused(app, world, drain):
    tenant, manager, operator = world["tenant"], world["manager"], world["operator"]
    add_findings(app, tenant, 2)
    client, other_client = signed_in(app, "admin", manager.email), signed_in(app, "admin", operator.email)

    first = request_pack(client, tenant, ops=True)
    second = request_pack(other_client, tenant, ops=True)  # same options, another member, still queued
    assert first.status_code == second.status_code == 302
    assert "already being generated" in other_client.get(second.headers["Location"]).get_data(as_text=True)
    assert len(packs(app, tenant)) == 1
    assert count(app, OperationRun, OperationRun.type == "review_pack.generate") == 1
    drain()
    ready = packs(app, tenant)[0]
    assert ready.status == "ready"

    third = request_pack(client, tenant, ops=True)
    assert "was reused" in client.get(third.headers["Location"]).get_data(as_text=True)
    assert [p.id for p in packs(app, tenant)] == [ready.id]
    assert count(app, OperationRun, OperationRun.type == "review_pack.generate") == 1

    # Other options are another pack; changed source data is a new pack too.
    request_pack(client, tenant)
    assert len(packs(app, tenant)) == 2
    drain()
    add_findings(app, tenant, 1)
    request_pack(client, tenant, ops=True)
    drain()
    latest = packs(app, tenant)
    assert len(latest) == 3 and latest[-1].status == "ready" and latest[-1].row_counts["findings"] == 3
    assert latest[-1].data_fingerprint != ready.data_fingerprint

    # A finding changing status changes the data as well: no reuse of the now stale pack.
    with app.app_context():
        from tenantpilot_findings.models import Finding

        db.session.scalars(select(Finding).where(Finding.tenant_id == tenant.id)).first().status = "triaged"
        db.session.commit()
    request_pack(client, tenant, ops=True)
    assert len(packs(app, tenant)) == 4


def test_an_expired_or_missing_pack_is_not_reused(app, world, drain):
    tenant, manager = world["tenant"], world["manager"]
    client = signed_in(app, "admin", manager.email)
    first = ready_pack(app, client, tenant, drain)
    from review_pack_helpers import expire, lose_pack_bytes

    expire(app, first.id)
    second = ready_pack(app, client, tenant, drain)
    assert second.id != first.id
    lose_pack_bytes(app, second.id)  # e.g. lost with a bucket
    third = ready_pack(app, client, tenant, drain)
    assert third.id != second.id


def test_new_queued_and_reused_requests_each_record_exactly_one_event(app, world, drain):
    tenant, manager, ws = world["tenant"], world["manager"], world["ws"]
    client = signed_in(app, "admin", manager.email)
    expected = {"source_surface": "review_packs_page", "include_operations": True, "include_pii": True}

    request_pack(client, tenant, ops=True, pii=True)  # new
    assert len(events(app)) == 1
    request_pack(client, tenant, ops=True, pii=True)  # already queued
    assert len(events(app)) == 2
    drain()
    request_pack(client, tenant, ops=True, pii=True)  # reused
    rows = events(app)
    assert len(rows) == 3
    pack_id = packs(app, tenant)[0].id
    for row in rows:
        assert row["metadata"] == expected  # exactly the three keys
        assert (row["workspace_id"], row["tenant_id"], row["user_id"]) == (ws.id, tenant.id, manager.id)
        assert (row["feature_area"], row["subject_type"], row["subject_id"]) == ("review_pack", "review_pack",
                                                                                 str(pack_id))
    serialized = json.dumps(rows)
    assert "@" not in serialized and PERSON not in serialized and TENANT_NAME not in serialized
    assert "Petra" not in serialized and "Contoso" not in serialized

    request_pack(client, tenant)  # other options: its own event, with its own flags
    assert events(app)[-1]["metadata"] == {"source_surface": "review_packs_page", "include_operations": False,
                                           "include_pii": False}


def test_refused_requests_record_nothing(app, world):
    tenant = world["tenant"]
    readonly = signed_in(app, "admin", world["readonly"].email)
    r = request_pack(readonly, tenant)
    assert r.status_code == 403
    outsider = signed_in(app, "admin", world["outsider"].email)
    assert request_pack(outsider, tenant).status_code == 404
    manager = signed_in(app, "admin", world["manager"].email)
    bad = request_pack(manager, tenant, extra={"include_pii": "maybe"})
    assert bad.status_code == 400 and "Tick the box or leave it empty." in bad.get_data(as_text=True)
    no_csrf = manager.post(f"/admin/t/{tenant.id}/review-packs", data={"include_pii": "y"})
    assert no_csrf.status_code == 400
    assert packs(app) == [] and events(app) == []
    assert count(app, OperationRun) == 0


def test_an_archived_tenant_refuses_new_packs(app, world):
    tenant = world["tenant"]
    with app.app_context():

        db.session.get(Tenant, tenant.id).status = "archived"
        db.session.commit()
    client = signed_in(app, "admin", world["manager"].email)
    page = client.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)
    assert "data-form=\"review-pack-request\"" not in page and "archived" in page
    r = request_pack(client, tenant)
    assert r.status_code == 409 and packs(app) == [] and events(app) == []


def test_members_see_the_list_readonly_without_the_form_and_pages_record_nothing(app, world, drain):
    tenant, manager = world["tenant"], world["manager"]
    client = signed_in(app, "admin", manager.email)
    ready_pack(app, client, tenant, drain, pii=True)
    request_pack(client, tenant, ops=True)  # one still queued: the table polls
    readonly, outsider = signed_in(app, "admin", world["readonly"].email), signed_in(app, "admin", world["outsider"].email)
    before_events, before_audit = count(app, ProductUsageEvent), count(app, AuditLog)  # after the sign-ins

    html = client.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)
    assert 'data-tenant-page="review_packs.list"' in html and 'data-form="review-pack-request"' in html
    assert 'data-status="ready"' in html and 'data-status="queued"' in html and 'hx-trigger="every 2s"' in html
    live = client.get(f"/admin/t/{tenant.id}/review-packs/live")
    assert live.status_code == 200 and "<html" not in live.get_data(as_text=True)

    html = readonly.get(f"/admin/t/{tenant.id}/review-packs").get_data(as_text=True)
    assert 'data-form="review-pack-request"' not in html and "review_packs.generate" in html
    assert 'data-action="download"' in html  # members download ready packs
    assert outsider.get(f"/admin/t/{tenant.id}/review-packs").status_code == 404
    assert outsider.get(f"/admin/t/{tenant.id}/review-packs/live").status_code == 404
    assert count(app, ProductUsageEvent) == before_events and count(app, AuditLog) == before_audit


def test_a_generation_that_fails_marks_the_pack_failed(app, make_app, world, drain, monkeypatch):
    # The artifact store is a bucket nobody listens at: the upload fails.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    broken = make_app(plugins=[plugin], TENANTPILOT_ARTIFACT_BUCKET="packs",
                      TENANTPILOT_ARTIFACT_S3_ENDPOINT_URL="http://127.0.0.1:9", TENANTPILOT_ARTIFACT_S3_REGION="us-east-1")
    client = signed_in(broken, "admin", world["manager"].email)
    assert request_pack(client, world["tenant"]).status_code == 302
    drain(broken)
    failed = packs(broken)[0]
    assert (failed.status, failed.failure_reason) == ("failed", "storage_failed")
    with broken.app_context():
        run = db.session.get(OperationRun, failed.operation_run_id)
        assert run.outcome == "failed"
        assert run.failure_summary[0]["message"] == "The review pack file could not be written."
    html = client.get(f"/admin/t/{world['tenant'].id}/review-packs").get_data(as_text=True)
    assert 'data-status="failed"' in html and 'data-action="download"' not in html


def test_an_unreachable_queue_fails_the_pack_and_records_nothing(app, make_app, world):
    down = make_app(plugins=[plugin], REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    client = signed_in(down, "admin", world["manager"].email)
    r = request_pack(client, world["tenant"])
    assert r.status_code == 503 and 'data-start-result="enqueue_failed"' in r.get_data(as_text=True)
    (failed,) = packs(down)
    assert (failed.status, failed.failure_reason) == ("failed", "enqueue_failed")
    assert events(down) == []


def test_without_the_reports_plugin_the_pack_skips_stored_reports(app, world, drain, monkeypatch):
    monkeypatch.setitem(sys.modules, "tenantpilot_reports.models", None)  # import fails
    client = signed_in(app, "admin", world["manager"].email)
    p = ready_pack(app, client, world["tenant"], drain)
    files = zip_files(app, p.id)
    assert "stored_reports.json" not in files
    assert json_of(files["manifest.json"])["sources"]["stored_reports"] == "not_installed"


def test_stored_reports_are_scoped_to_the_tenant_and_redacted_without_pii(app, world, drain, monkeypatch):
    """Against a stand-in stored_reports table (the reports plugin's model may not exist
    yet): tenant scoping, person columns and nested person keys only with include_pii."""
    import sqlalchemy as sa

    from tenantpilot_review_packs import export

    meta = sa.MetaData()
    table = sa.Table("rp_test_stored_reports", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("tenant_id", sa.Integer), sa.Column("report_type", sa.String(60)),
                     sa.Column("fingerprint", sa.String(64)), sa.Column("created_by_name", sa.String(200)),
                     sa.Column("payload", sa.JSON))
    tenant, other = world["tenant"], world["other"]
    with app.app_context():
        meta.create_all(db.engine)
        db.session.execute(table.insert(), [
            {"tenant_id": tenant.id, "report_type": "entra_admin_roles", "fingerprint": "abc",
             "created_by_name": PERSON,
             "payload": {"roles": [{"role": "Global Administrator", "principal_id": "p-1",
                                    "display_name": "Alex Admin", "mail": "alex@contoso.test"}], "total": 1,
                         "by_role": {"User Administrator": 2}, "principal_types": {"user": 2},
                         "contact": "helpdesk@contoso.test"}},
            {"tenant_id": other.id, "report_type": "permission_posture", "fingerprint": "zzz",
             "created_by_name": "Someone Else", "payload": {}}])
        db.session.commit()
    monkeypatch.setattr(export, "reports_table", lambda: table)
    try:
        client = signed_in(app, "admin", world["manager"].email)
        plain = zip_files(app, ready_pack(app, client, tenant, drain).id)
        reports = json_of(plain["stored_reports.json"])
        assert [r["report_type"] for r in reports] == ["entra_admin_roles"]  # this tenant's only
        assert reports[0]["payload"] == {"roles": [{"role": "Global Administrator"}], "total": 1,
                                         "by_role": {"User Administrator": 2}, "principal_types": {"user": 2},
                                         "contact": "[redacted]"}
        assert "created_by_name" not in reports[0] and "created_by_name" not in csv_rows(plain["stored_reports.csv"])[0]
        assert b"Alex" not in b"".join(plain.values()) and b"@" not in b"".join(plain.values())

        with_pii = zip_files(app, ready_pack(app, client, tenant, drain, pii=True).id)
        reports = json_of(with_pii["stored_reports.json"])
        assert reports[0]["created_by_name"] == PERSON
        assert reports[0]["payload"]["roles"][0]["display_name"] == "Alex Admin"
    finally:
        with app.app_context():
            meta.drop_all(db.engine)


def test_the_reports_plugins_stored_reports_are_exported(app, world, drain):
    models = pytest.importorskip("tenantpilot_reports.models")
    tenant = world["tenant"]
    with app.app_context():
        db.session.add(models.StoredReport(tenant_id=tenant.id, report_type="permission_posture", fingerprint="f" * 64,
                                           summary={"required_count": 3, "missing": ["Policy.Read.All"]}))
        db.session.add(models.StoredReport(tenant_id=world["other"].id, report_type="entra_admin_roles",
                                           fingerprint="e" * 64, summary={}))
        db.session.commit()
    client = signed_in(app, "admin", world["manager"].email)
    p = ready_pack(app, client, tenant, drain)
    files = zip_files(app, p.id)
    reports = json_of(files["stored_reports.json"])
    assert [(r["report_type"], r["summary"]) for r in reports] == [
        ("permission_posture", {"required_count": 3, "missing": ["Policy.Read.All"]})]
    assert csv_rows(files["stored_reports.csv"])[0]["report_type"] == "permission_posture"
    assert p.row_counts["stored_reports"] == 1
    # A new report is new data: the next identical request generates a fresh pack.
    with app.app_context():
        db.session.add(models.StoredReport(tenant_id=tenant.id, report_type="entra_admin_roles", fingerprint="d" * 64,
                                           summary={"role_count": 1}))
        db.session.commit()
    assert ready_pack(app, client, tenant, drain).id != p.id


def test_csv_cells_that_spreadsheets_would_run_are_neutralised(app, world, drain):
    tenant = world["tenant"]
    add_findings(app, tenant, 1, title="=HYPERLINK(\"http://evil.test\")")
    client = signed_in(app, "admin", world["manager"].email)
    files = zip_files(app, ready_pack(app, client, tenant, drain).id)
    assert csv_rows(files["findings.csv"])[0]["title"].startswith("'=HYPERLINK")
    assert json_of(files["findings.json"])[0]["title"].startswith("=HYPERLINK")  # JSON keeps the raw value


def test_timestamps_are_iso_8601_with_offset_in_csv_and_json(app, world, drain):
    """One format for every export (tenantpilot.timeutil.iso_utc): to the second, UTC, with
    its offset; the same text in the CSV and the JSON."""
    import re

    tenant, manager = world["tenant"], world["manager"]
    add_findings(app, tenant, 1, first_seen_at=utcnow(), last_seen_at=utcnow())
    start_noop(app, tenant, manager, drain)
    client = signed_in(app, "admin", manager.email)
    files = zip_files(app, ready_pack(app, client, tenant, drain, ops=True).id)
    iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    for source, columns in (("findings", ("created_at", "first_seen_at", "last_seen_at")),
                            ("operation_runs", ("created_at", "started_at", "completed_at"))):
        [csv_row], [json_row] = csv_rows(files[f"{source}.csv"]), json_of(files[f"{source}.json"])
        for column in columns:
            assert iso.fullmatch(csv_row[column]) and csv_row[column] == json_row[column], (source, column)
    manifest = json_of(files["manifest.json"])
    assert iso.fullmatch(manifest["generated_at"]) and iso.fullmatch(manifest["expires_at"])
    assert manifest["format_version"] == 2


def test_requests_are_audited_without_secrets(app, world, drain):
    client = signed_in(app, "admin", world["manager"].email)
    request_pack(client, world["tenant"], pii=True)
    (row,) = audit_rows(app, "review_pack.requested")
    assert row.meta["include_pii"] is True and row.target_type == "review_pack"
    assert "token" not in json.dumps(row.meta)


def test_the_installed_distribution_loads_through_its_entry_point(make_app):
    registry = make_app().extensions["tenantpilot"].registry
    assert registry.owners[("operation type", "review_pack.generate")] == "review_packs"
    assert registry.operation_types["review_pack.generate"].tenant_capabilities == ("review_packs.generate",)
    assert registry.scheduled_jobs["review_packs.prune"].interval_seconds == 86400
    assert registry.event_families[service.EVENT].metadata_keys == ("source_surface", "include_operations",
                                                                    "include_pii")
