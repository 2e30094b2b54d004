"""Every signed-in page pays a fixed cost before its own content: who is signed in (person
and session row) and the chrome's live figures (bell, pending approvals, break-glass
banner). Each is one statement, so a page costs its own queries plus two, and the figures
stay right when the page itself changes them (a commit in the request drops them)."""
import re

from sqlalchemy import event

from tenantpilot.extensions import db
from tenantpilot.models import BreakGlassSession
from tenantpilot.testing import csrf_from, signed_in


class Statements:
    def __init__(self, app):
        self.seen: list[str] = []
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, *args):
        if not statement.startswith("BEGIN"):  # SQLite's explicit transaction start
            self.seen.append(" ".join(statement.split()))

    def during(self, fn):
        self.seen.clear()
        result = fn()
        return result, list(self.seen)


def test_runs_list_is_its_query_plus_identity_and_chrome(app, factory):
    factory.platform_user(email="ops@example.test")
    client = signed_in(app, "system", "ops@example.test", "platform-pass-123")
    client.get("/system/ops/runs")  # the first request may refresh the session's last-seen time
    spy = Statements(app)
    page, seen = spy.during(lambda: client.get("/system/ops/runs"))
    assert page.status_code == 200 and "Runs" in page.get_data(as_text=True)
    assert len(seen) == 3, seen
    assert "auth_sessions" in seen[0] and "platform_users" in seen[0]  # person + session, one query
    assert "notifications" in seen[-1] and "approval_requests" in seen[-1] and "break_glass_sessions" in seen[-1]


def test_a_tenant_page_loads_tenant_workspace_and_membership_at_once(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="Contoso")
    factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    client = signed_in(app, "admin", "manager@example.test", "user-pass-123")
    client.get(f"/admin/t/{tenant.id}/")
    spy = Statements(app)
    page, seen = spy.during(lambda: client.get(f"/admin/t/{tenant.id}/"))
    assert page.status_code == 200 and "Contoso" in page.get_data(as_text=True)
    lookups = [s for s in seen if "FROM tenants" in s or "FROM workspaces" in s or "FROM memberships" in s]
    assert len(lookups) == 1 and "memberships" in lookups[0] and "workspaces" in lookups[0], lookups


def test_break_glass_banner_follows_a_start(app, factory):
    ops = factory.platform_user(email="ops@example.test")
    client = signed_in(app, "system", "ops@example.test", "platform-pass-123")
    console = client.get("/system/").get_data(as_text=True)
    assert "Break-glass active" not in console
    answer = client.post("/system/break-glass/start", data={
        "csrf_token": csrf_from(console), "reason": "Incident 4711: tenant locked out", "minutes": "15"},
        follow_redirects=True)
    assert answer.status_code == 200 and "Break-glass active" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(BreakGlassSession).filter_by(platform_user_id=ops.id).count() == 1


def test_a_commit_in_the_request_refreshes_the_figures(app, factory):
    from flask_login import login_user

    from tenantpilot.models import Notification, PlatformUser
    from tenantpilot.web import chrome

    ops = factory.platform_user(email="ops@example.test")
    with app.test_request_context("/system/"):
        login_user(db.session.get(PlatformUser, ops.id))
        assert chrome.figures("system")["unread"] == 0
        db.session.add(Notification(platform_user_id=ops.id, title="Run #1 failed", kind="run_failed"))
        db.session.commit()
        assert chrome.figures("system")["unread"] == 1


def test_control_tower_labels_its_top_failing_types_in_one_statement(app, factory):
    """Five failing types: their labels (each the newest run's stored label) come from one
    statement, not one per type, and each row still shows its own label."""
    import uuid
    from datetime import timedelta

    from tenantpilot import run_rollup
    from tenantpilot.models import OperationRun
    from tenantpilot.timeutil import utcnow

    factory.platform_user(email="ops@example.test")
    now = utcnow()
    with app.app_context():
        for i in range(5):
            for age, label in ((3, f"Old label {i}"), (1, f"Check number {i}")):  # the newest wins
                db.session.add(OperationRun(
                    type=f"probe.check{i}", status="completed", outcome="failed", run_identity_hash=uuid.uuid4().hex,
                    context={"operation_label": label}, failure_summary=[], summary_counts={}, tenants_total=1,
                    tenants_done=1, tenants_failed=1, created_at=now - timedelta(hours=age),
                    completed_at=now - timedelta(hours=age) + timedelta(minutes=1)))
        db.session.commit()
        run_rollup.rebuild()
    client = signed_in(app, "system", "ops@example.test", "platform-pass-123")
    client.get("/system/")
    spy = Statements(app)
    page, seen = spy.during(lambda: client.get("/system/"))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for i in range(5):
        row = re.search(rf'data-offender-type="probe.check{i}">\s*<td>(?:<a [^>]*>)?([^<]*)<', html)
        assert row and row.group(1) == f"Check number {i}", row and row.group(1)
    label_lookups = [s for s in seen if "SELECT operation_runs.context FROM operation_runs WHERE operation_runs.type" in s]
    assert len(label_lookups) == 1, label_lookups


def test_labels_of_many_types_at_once(app, factory):
    """The label lookup takes any number of types (SQLite caps one compound SELECT at 500
    parts): 600 types, each with its newest run's label or, without runs, the type."""
    import uuid
    from datetime import timedelta

    from tenantpilot import dashboard
    from tenantpilot.models import OperationRun
    from tenantpilot.timeutil import utcnow

    now = utcnow()
    types = [f"bulk.type{i}" for i in range(600)]
    with app.app_context():
        for t in types[:300]:
            db.session.add(OperationRun(type=t, status="completed", outcome="failed", run_identity_hash=uuid.uuid4().hex,
                                        context={"operation_label": t.upper()}, failure_summary=[], summary_counts={},
                                        created_at=now - timedelta(minutes=5), completed_at=now))
        db.session.commit()
        labels = dashboard._labels(types, now - timedelta(hours=1))
    assert labels == {t: (t.upper() if i < 300 else t) for i, t in enumerate(types)}
