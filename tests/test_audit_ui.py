"""/system/audit (SPEC 8): filters, keyset pagination, the target filter, the detail page with
sanitized metadata, authorization (403 without platform.audit.view), 404, and that reading
the audit log writes no audit."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from tenantpilot import audit
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog
from tenantpilot.testing import signed_in
from tenantpilot.timeutil import utcnow

OPS = ("ops@example.test", "ops-password-1")
NOAUDIT = ("noaudit@example.test", "noaudit-password-1")


@pytest.fixture
def world(app, factory):
    ws, ws2 = factory.workspace("Northwind"), factory.workspace("Fabrikam")
    t1, t2 = factory.tenant(ws, name="Northwind Prod"), factory.tenant(ws2, name="Fabrikam Prod")
    factory.platform_user(email=OPS[0], password=OPS[1])
    factory.platform_user(email=NOAUDIT[0], password=NOAUDIT[1],
                          capabilities=["platform.access_system_panel", "platform.console.view", "platform.ops.view"])
    now = utcnow()
    base = {"actor_id": None, "actor_email": None, "target_type": None, "target_id": None, "target_label": None,
            "summary": "", "meta": {}, "ip": None, "user_agent": None}
    rows = [
        # 1: platform-plane event, by Alice, 1 hour ago
        {**base, "action": "operational_control.paused", "actor_type": "platform", "actor_id": 7,
         "actor_name": "Alice Operator", "actor_email": "alice@ops.test", "workspace_id": None, "tenant_id": None,
         "status": "success", "summary": "Paused restore globally", "recorded_at": now - timedelta(hours=1)},
        # 2: blocked, tenant-scoped in Northwind, 3 days ago, system actor
        {**base, "action": "operational_control.execution_blocked", "actor_type": "system", "actor_name": "System",
         "workspace_id": ws.id, "tenant_id": t1.id, "status": "blocked", "summary": "Restore blocked",
         "recorded_at": now - timedelta(days=3)},
        # 3: failed, Fabrikam, 10 days ago, human actor Bob, targets run 12
        {**base, "action": "platform.ops.runbooks.start", "actor_type": "human", "actor_id": 3,
         "actor_name": "Bob Builder", "actor_email": "bob@fabrikam.test", "workspace_id": ws2.id,
         "tenant_id": t2.id, "status": "failed", "summary": "Start of run 12", "target_type": "operation_run",
         "target_id": "12", "target_label": "Legacy rename", "recorded_at": now - timedelta(days=10)},
        # 4: workspace-only event, 40 days ago, targets run 13
        {**base, "action": "platform.ops.runs.cancel", "actor_type": "platform", "actor_id": 7,
         "actor_name": "Alice Operator", "actor_email": "alice@ops.test", "workspace_id": ws.id, "tenant_id": None,
         "status": "success", "summary": "Cancelled run 13", "target_type": "operation_run", "target_id": "13",
         "recorded_at": now - timedelta(days=40)},
    ]
    with app.app_context():
        db.session.execute(insert(AuditLog), rows)
        db.session.commit()
        ids = list(db.session.scalars(select(AuditLog.id).order_by(AuditLog.id)))
    return {"ws": ws, "ws2": ws2, "t1": t1, "t2": t2, "ids": ids}


def shown(body: str) -> list[str]:
    """Summaries of the listed events, in page order."""
    return re.findall(r'<tr data-event="\d+">.*?<td>([^<]*)</td>\s*</tr>', body, re.S)


def audit_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditLog))


def get(client, url, status=200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code)
    return resp.get_data(as_text=True)


def test_list_newest_first_with_columns(app, world):
    client = signed_in(app, "system", *OPS)
    body = get(client, "/system/audit")
    summaries = shown(body)
    # The sign-in's own audit event is newest; then the fixture events by recorded_at.
    assert summaries[-4:] == ["Paused restore globally", "Restore blocked", "Start of run 12", "Cancelled run 13"]
    assert "<code>operational_control.execution_blocked</code>" in body
    assert 'class="badge badge-warn">blocked<' in body and 'class="badge badge-bad">failed<' in body
    row1 = re.search(r'<tr data-event="%d">.*?</tr>' % world["ids"][0], body, re.S).group(0)
    assert "Platform" in row1 and "Alice Operator" in row1
    row2 = re.search(r'<tr data-event="%d">.*?</tr>' % world["ids"][1], body, re.S).group(0)
    assert "Northwind" in row2 and "Northwind Prod" in row2
    row3 = re.search(r'<tr data-event="%d">.*?</tr>' % world["ids"][2], body, re.S).group(0)
    assert "Legacy rename" in row3 and "#12" in row3 and "operation run" in row3
    assert 'href="/system/audit"' in body  # the nav link


@pytest.mark.parametrize("query, expected", [
    ("action=operational_control.paused", ["Paused restore globally"]),
    ("action=platform.ops.runs.cancel", ["Cancelled run 13"]),
    # A prefix matches the action and everything under it (issue 13), by whole segments.
    ("action=operational_control", ["Paused restore globally", "Restore blocked"]),
    ("action=operational_control.", ["Paused restore globally", "Restore blocked"]),
    ("action=operational_contr", []),
    ("actor=alice", ["Paused restore globally", "Cancelled run 13"]),
    ("actor=FABRIKAM.TEST", ["Start of run 12"]),  # e-mail substring, case-insensitive
    ("actor=%25", []),  # LIKE wildcards are literal
    ("actor_type=system", ["Restore blocked"]),
    ("actor_type=human", ["Start of run 12"]),
    ("workspace={ws}", ["Restore blocked", "Cancelled run 13"]),
    ("workspace={ws2}", ["Start of run 12"]),
    ("tenant={t1}", ["Restore blocked"]),
    ("workspace={ws}&tenant={t1}", ["Restore blocked"]),
    ("status=blocked", ["Restore blocked"]),
    ("status=failed", ["Start of run 12"]),
    ("target_type=operation_run", ["Start of run 12", "Cancelled run 13"]),
    ("target_type=operation_run&target_id=12", ["Start of run 12"]),
    ("target_type=operation_run&target_id=99", []),
    ("window=24h&actor_type=platform&action=operational_control.paused", ["Paused restore globally"]),
    ("window=7d", ["Sign-in", "Paused restore globally", "Restore blocked"]),  # incl. this sign-in
    ("window=30d&status=failed", ["Start of run 12"]),
    ("window=all&actor=alice", ["Paused restore globally", "Cancelled run 13"]),
])
def test_each_filter(app, world, query, expected):
    client = signed_in(app, "system", *OPS)
    url = "/system/audit?" + query.format(ws=world["ws"].id, ws2=world["ws2"].id, t1=world["t1"].id)
    body = get(client, url)
    assert shown(body) == expected
    if not expected:
        assert "No audit events match these filters." in body


def test_window_excludes_older_events(app, world):
    client = signed_in(app, "system", *OPS)
    assert "Restore blocked" not in shown(get(client, "/system/audit?window=24h"))
    assert "Cancelled run 13" not in shown(get(client, "/system/audit?window=30d"))
    assert "Cancelled run 13" in shown(get(client, "/system/audit?window=all"))


def test_workspace_filter_names_the_workspace(app, world):
    client = signed_in(app, "system", *OPS)
    body = get(client, f"/system/audit?workspace={world['ws2'].id}")
    assert re.search(r'data-filter="workspace">workspace:\s*Fabrikam \(#%d\)' % world["ws2"].id, body)
    body = get(client, "/system/audit?workspace=99999")
    assert "unknown workspace (#99999)" in body and shown(body) == []


@pytest.mark.parametrize("query, message", [
    ("workspace=abc", "Workspace must be a positive whole number"),
    ("tenant=-3", "Tenant must be a positive whole number"),
    ("window=1y", "Window must be one of: 24h, 7d, 30d, all."),
    ("status=ok", "Status must be one of: success, blocked, failed."),
    ("actor_type=robot", "Actor type must be one of: human, platform, system."),
    ("action=drop%20table", "Action must be an action id"),
    ("target_id=12", "Target id needs a target type"),
    ("target_type=a%20b", "Target type must be a type id"),
    ("before=xyz", "Page cursor (before) must be a positive whole number"),
    ("before=987654", "This page cursor points at no audit event"),
    ("actor=" + "x" * 201, "Actor must be at most 200 characters."),
])
def test_bad_filter_values_are_a_clear_400(app, world, query, message):
    client = signed_in(app, "system", *OPS)
    body = get(client, "/system/audit?" + query, status=400)
    assert message in body
    assert "data-filter-error" in body and "<tr data-event" not in body


def test_keyset_pagination_across_120_events(app, world):
    now = utcnow()
    with app.app_context():
        # Pairs of events share a timestamp, so the id tie-break matters.
        db.session.execute(insert(AuditLog), [
            {"action": "tests.bulk", "actor_type": "system", "actor_name": "System", "status": "success",
             "summary": f"bulk {i:03d}", "meta": {"i": i}, "recorded_at": now - timedelta(minutes=200 - i // 2)}
            for i in range(120)])
        db.session.commit()
    client = signed_in(app, "system", *OPS)
    seen, url, pages = [], "/system/audit?action=tests.bulk", 0
    while url:
        body = get(client, url)
        page = shown(body)
        assert len(page) <= 50
        seen += page
        pages += 1
        m = re.search(r'<a href="([^"]+)" rel="next">', body)
        url = m.group(1).replace("&amp;", "&") if m else None
        if url:
            assert "action=tests.bulk" in url and "before=" in url
        if pages > 1:
            assert "« Newest" in body
    assert pages == 3
    assert seen == [f"bulk {i:03d}" for i in range(119, -1, -1)]  # newest first, none twice, none lost


def test_detail_shows_every_field_and_sanitized_metadata(app, world):
    with app.app_context():
        event = audit.record(
            "platform.ops.runbooks.start", actor=Actor("platform", 42, "Carol Ops", "carol@ops.test"),
            workspace_id=world["ws"].id, tenant_id=world["t1"].id, target=("operation_run", 12, "Legacy rename"),
            summary="Started Legacy rename for tenant Northwind Prod",
            metadata={"runbook": "tests.rename", "api_token": "sk-live-123", "note": "mail me at x@y.test",
                      "scope": {"kind": "single_tenant", "tenant_id": world["t1"].id}})
        event_id = event.id
    client = signed_in(app, "system", *OPS)
    body = get(client, f"/system/audit/{event_id}")
    for text in ("platform.ops.runbooks.start", "Carol Ops", "carol@ops.test", "platform", "42",
                 "Northwind (#%d)" % world["ws"].id, "Northwind Prod (#%d)" % world["t1"].id,
                 "Legacy rename", "Started Legacy rename for tenant Northwind Prod", "success"):
        assert text in body, text
    assert 'href="/system/ops/runs/12"' in body  # the target links to its run
    meta = re.search(r'<pre class="context" id="audit-metadata">(.*?)</pre>', body, re.S).group(1)
    assert "&#34;runbook&#34;: &#34;tests.rename&#34;" in meta  # pretty-printed JSON (escaped)
    assert "\n  &#34;scope&#34;: {\n    &#34;kind&#34;" in meta
    assert "sk-live-123" not in body and "[redacted]" in meta and "x@y.test" not in body and "[email]" in meta
    # Links back into the filtered list.
    assert 'href="/system/audit?action=platform.ops.runbooks.start"' in body
    assert 'href="/system/audit?target_type=operation_run&amp;target_id=12"' in body
    same_target = get(client, "/system/audit?target_type=operation_run&target_id=12")
    assert shown(same_target) == ["Started Legacy rename for tenant Northwind Prod", "Start of run 12"]


def test_detail_of_a_platform_event_and_unknown_id(app, world):
    client = signed_in(app, "system", *OPS)
    body = get(client, f"/system/audit/{world['ids'][0]}")
    assert "— (platform)" in body and "Paused restore globally" in body
    assert get(client, "/system/audit/987654", status=404)
    assert client.get("/system/audit/abc").status_code == 404


def test_403_without_audit_view_shows_no_audit_content(app, world):
    client = signed_in(app, "system", *NOAUDIT)
    for url in ("/system/audit", "/system/audit?action=operational_control.paused",
                f"/system/audit/{world['ids'][0]}", "/system/audit/987654"):
        resp = client.get(url)
        assert resp.status_code == 403, url
        body = resp.get_data(as_text=True)
        for secret in ("Paused restore globally", "operational_control", "Alice Operator", "<tr data-event"):
            assert secret not in body, (url, secret)
    assert 'href="/system/audit"' not in get(client, "/system/")  # no nav link either


def test_anonymous_is_sent_to_login(app, world):
    resp = app.test_client().get("/system/audit")
    assert resp.status_code == 302 and "/system/login" in resp.headers["Location"]


def test_reading_the_audit_log_writes_no_audit(app, world):
    client = signed_in(app, "system", *OPS)
    before = audit_count(app)
    get(client, "/system/audit")
    get(client, "/system/audit?actor=alice&window=7d")
    get(client, "/system/audit?status=nope", status=400)
    get(client, f"/system/audit/{world['ids'][2]}")
    get(client, "/system/audit/987654", status=404)
    assert audit_count(app) == before


def test_audit_rows_cannot_be_changed(app, world):
    """The page has no write path; the ORM refuses one anyway."""
    with app.app_context():
        row = db.session.get(AuditLog, world["ids"][0])
        row.summary = "tampered"
        with pytest.raises(Exception):
            db.session.commit()
        db.session.rollback()
    assert all(rule.methods <= {"GET", "HEAD", "OPTIONS"} for rule in app.url_map.iter_rules()
               if rule.endpoint.startswith("audit_ui."))


def test_run_detail_links_into_the_audit_log(app, world):
    from tenantpilot.models import OperationRun

    with app.app_context():
        run = OperationRun(type="tests.rename", status="completed", outcome="succeeded", run_identity_hash="x" * 64,
                           context={"operation_label": "Legacy rename"})
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        event = audit.record("platform.ops.runs.cancel", actor=Actor.system(), target=("operation_run", run_id, "x"),
                             summary=f"Cancelled run #{run_id}")
        event_id = event.id
    client = signed_in(app, "system", *OPS)
    body = get(client, f"/system/ops/runs/{run_id}")
    assert f'href="/system/audit?target_type=operation_run&amp;target_id={run_id}">All audit events for this run</a>' in body
    assert f'href="/system/audit/{event_id}"' in body
    listed = get(client, f"/system/audit?target_type=operation_run&target_id={run_id}")
    assert shown(listed) == [f"Cancelled run #{run_id}"]
    # An operator who may see runs but not the audit log gets no dead links.
    other = get(signed_in(app, "system", *NOAUDIT), f"/system/ops/runs/{run_id}")
    assert "All audit events for this run" not in other and f'href="/system/audit/{event_id}"' not in other
    assert f"Cancelled run #{run_id}" in other
