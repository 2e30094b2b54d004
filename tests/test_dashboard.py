"""The /system control tower (SPEC 7): KPIs, top offenders, recent failures and health
per window, the window selector, permissions, no tenant names, and a render that writes
nothing."""
import re
import uuid
from datetime import timedelta

import pytest
from rq.utils import utcformat
from sqlalchemy import event

from tenantpilot import run_rollup
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, OperationalControlActivation, OperationRun, OperationRunTenant
from tenantpilot.queue import get_queue, make_worker
from tenantpilot.testing import signed_in
from tenantpilot.timeutil import utcnow
from tests.helpers import count

OPS = ("system", "ops@example.test", "ops-password-1")

NOLEAK = "NoLeak Tenant Name"


def add_run(app, type_, label, *, ago, outcome="succeeded", status="completed", tenants=(),
            failure_summary=(), started_ago=None, done_after=timedelta(minutes=5)):
    """One run created ``ago`` before now, with tenant rows {tenant_id: (status, started_ago, finished_ago)}."""
    now = utcnow()
    created = now - ago
    with app.app_context():
        rows = dict(tenants)
        run = OperationRun(
            type=type_, status=status, outcome=outcome if status == "completed" else "pending",
            run_identity_hash=uuid.uuid4().hex, context={"operation_label": label},
            failure_summary=list(failure_summary), summary_counts={},
            tenants_total=len(rows), tenants_done=len(rows) if status == "completed" else 0,
            tenants_failed=sum(1 for s in rows.values() if s[0] == "failed"),
            created_at=created,
            started_at=now - started_ago if started_ago is not None else (created if status != "queued" else None),
            completed_at=created + done_after if status == "completed" else None,
        )
        db.session.add(run)
        db.session.flush()
        for tenant_id, (t_status, t_started, t_finished) in rows.items():
            db.session.add(OperationRunTenant(
                run_id=run.id, tenant_id=tenant_id, status=t_status, accounted=status == "completed",
                reason_code="provider_timeout" if t_status == "failed" else None,
                started_at=now - t_started if t_started is not None else None,
                finished_at=now - t_finished if t_finished is not None else None))
        db.session.commit()
        run_rollup.rebuild()  # written around the ledger, like a bulk load: recount the rollup
        return run.id


def done(status, ago=timedelta(hours=1)):
    return (status, ago, ago)


@pytest.fixture
def world(app, factory):
    ws = factory.workspace("Dashboard WS")
    t1 = factory.tenant(ws, name=NOLEAK).id
    t2, t3 = factory.tenant(ws).id, factory.tenant(ws).id
    h, d = timedelta(hours=1), timedelta(days=1)
    runs = {
        "A": add_run(app, "alpha.sync", "Alpha sync", ago=2 * h, outcome="failed",
                     tenants={t1: done("failed"), t2: done("failed")},
                     failure_summary=[{"reason_code": "provider_timeout", "message": "timed out", "tenant_id": t1}]),
        "B": add_run(app, "alpha.sync", "Alpha sync", ago=3 * h, tenants={t1: done("succeeded")}),
        "C": add_run(app, "beta.report", "Beta report", ago=5 * h, outcome="partially_succeeded",
                     tenants={t1: done("failed"), t2: done("succeeded"), t3: done("succeeded")},
                     # not a machine-safe code: shown as unexpected_error, never verbatim
                     failure_summary=[{"reason_code": "Boom <script>", "message": "x", "tenant_id": t1}]),
        "D": add_run(app, "beta.report", "Beta report", ago=3 * d, outcome="failed",
                     tenants={t1: done("failed", 3 * d), t3: done("failed", 3 * d)}),
        "E": add_run(app, "beta.report", "Beta report", ago=3 * d + h, outcome="failed",
                     tenants={t3: done("failed", 3 * d)}),
        "F": add_run(app, "alpha.sync", "Alpha sync", ago=20 * d, outcome="failed",
                     tenants={t2: done("failed", 20 * d)}),
        "G": add_run(app, "gamma.old", "Gamma old", ago=40 * d, outcome="failed",
                     tenants={t3: done("failed", 40 * d)}),
        # Active runs: a stale queued one, a fresh running one, a running one stuck for 2 days.
        "Q": add_run(app, "alpha.sync", "Alpha sync", ago=timedelta(minutes=30), status="queued",
                     tenants={t1: ("pending", None, None)}),
        "R1": add_run(app, "beta.report", "Beta report", ago=timedelta(minutes=10), status="running",
                      tenants={t2: ("running", timedelta(minutes=9), None)}),
        "R2": add_run(app, "beta.report", "Beta report", ago=2 * d, status="running",
                      tenants={t2: ("running", 2 * d, None), t3: ("pending", None, None)}),
    }
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    return {"tenants": (t1, t2, t3), "runs": runs}


def kpis(html):
    return {k: int(v.replace(",", "")) for k, v in re.findall(r'data-kpi="(\w+)">([\d,]+)<', html)}


def offenders(html, kind):
    return [(key, int(n)) for key, n in re.findall(
        rf'data-offender-{kind}="([\w.]+)">.*?data-count>(\d+)<', html, re.S)]


@pytest.mark.parametrize("window,expected", [
    (None, {"started": 5, "succeeded": 1, "failed": 2, "partially_succeeded": 1, "active": 3}),
    ("24h", {"started": 5, "succeeded": 1, "failed": 2, "partially_succeeded": 1, "active": 3}),
    ("7d", {"started": 8, "succeeded": 1, "failed": 4, "partially_succeeded": 1, "active": 3}),
    ("30d", {"started": 9, "succeeded": 1, "failed": 5, "partially_succeeded": 1, "active": 3}),
])
def test_kpis_follow_the_window(app, world, window, expected):
    resp = signed_in(app, *OPS).get("/system/" + (f"?window={window}" if window else ""))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert kpis(html) == expected
    assert "right now, any age: 2 running, 1 queued" in html  # active runs are not windowed


def test_window_selector_marks_the_current_window_and_links_keep_it(app, world):
    html = signed_in(app, *OPS).get("/system/?window=7d").get_data(as_text=True)
    links = dict(re.findall(r'<a href="([^"]+)" data-window="(\w+)"', html))
    assert sorted(links.values()) == ["24h", "30d", "7d"]
    assert {v: k for k, v in links.items()} == {"24h": "/system/?window=24h", "7d": "/system/?window=7d",
                                                "30d": "/system/?window=30d"}
    current = re.findall(r'data-window="(\w+)"\s+aria-current="page">([^<]+)<', html)
    assert current == [("7d", "Last 7 days")]
    assert "Operation runs across all workspaces, last 7 days." in html
    # Links into the runs list carry the window along.
    for href in re.findall(r'href="(/system/ops/runs\?[^"]*(?:type|tenant)=[^"]*)"', html):
        assert "window=7d" in href, href


def test_top_offenders_order_and_counts(app, world):
    t1, t2, t3 = world["tenants"]
    client = signed_in(app, *OPS)
    day = client.get("/system/").get_data(as_text=True)
    week = client.get("/system/?window=7d").get_data(as_text=True)
    month = client.get("/system/?window=30d").get_data(as_text=True)
    # Types by failed runs, ties broken by failed tenants (alpha: 2 tenants, beta: 1).
    assert offenders(day, "type") == [("alpha.sync", 1), ("beta.report", 1)]
    assert offenders(week, "type") == [("beta.report", 3), ("alpha.sync", 1)]
    assert offenders(month, "type") == [("beta.report", 3), ("alpha.sync", 2)]  # gamma is 40 days old
    assert re.search(r'data-offender-type="beta.report">.*?Beta report.*?data-tenants>4<', week, re.S)
    # Tenants by failed tenant rows; ties by id.
    assert offenders(day, "tenant") == [(str(t1), 2), (str(t2), 1)]
    assert offenders(week, "tenant") == [(str(t1), 3), (str(t3), 2), (str(t2), 1)]
    assert offenders(month, "tenant") == [(str(t1), 3), (str(t2), 2), (str(t3), 2)]
    # Tenants by id only, linking to the runs list of that tenant in the same window.
    assert f'href="/system/ops/runs?tenant={t1}&amp;window=7d">Tenant #{t1}</a>' in week
    # The biggest offender has the full bar.
    assert re.search(rf'data-offender-tenant="{t1}">.*?<rect width="100%"', week, re.S)


def test_top_offenders_show_five_each(app, factory):
    ws = factory.workspace()
    tenants = [factory.tenant(ws).id for _ in range(7)]
    factory.platform_user(email="ops@example.test", password="ops-password-1")
    for i, tenant_id in enumerate(tenants):
        for _ in range(i + 1):
            add_run(app, f"type.n{i}", f"Type {i}", ago=timedelta(hours=1), outcome="failed",
                    tenants={tenant_id: done("failed")})
    html = signed_in(app, *OPS).get("/system/").get_data(as_text=True)
    assert [n for _, n in offenders(html, "type")] == [7, 6, 5, 4, 3]
    assert offenders(html, "tenant") == [(str(t), n) for t, n in zip(tenants[::-1], (7, 6, 5, 4, 3))]


def test_recent_failures_link_to_runs_with_sanitized_reasons(app, world):
    runs = world["runs"]
    client = signed_in(app, *OPS)
    day = client.get("/system/").get_data(as_text=True)
    rows = re.findall(r'<tr data-failure="(\d+)">(.*?)</tr>', day, re.S)
    assert [int(r) for r, _ in rows] == [runs["A"], runs["C"]]
    a, c = rows[0][1], rows[1][1]
    assert f'href="/system/ops/runs/{runs["A"]}"' in a and "Alpha sync" in a and "2/2" in a
    assert "badge-bad" in a and "<code>provider_timeout</code>" in a
    assert "partially succeeded" in c and "1/3" in c and "<code>unexpected_error</code>" in c
    assert "Boom" not in day
    week = client.get("/system/?window=7d").get_data(as_text=True)
    assert [int(r) for r in re.findall(r'<tr data-failure="(\d+)">', week)] == [runs["A"], runs["C"], runs["D"], runs["E"]]


def test_without_ops_view_nothing_links_to_runs(app, world, factory):
    t1 = world["tenants"][0]
    factory.platform_user(email="viewer@example.test", password="viewer-password-1",
                          capabilities=["platform.access_system_panel", "platform.console.view"])
    html = signed_in(app, "system", "viewer@example.test", "viewer-password-1").get("/system/").get_data(as_text=True)
    assert f"Tenant #{t1}" in html and "/system/ops/runs" not in html
    assert "/system/ops/controls" not in html and "Alpha sync" in html


def test_health_queue_workers_stale_runs_and_pauses(app, world, factory):
    now = utcnow()
    registry = app.extensions["tenantpilot"].registry
    active_key, expired_key = "findings.lifecycle.backfill", "restore.execute"
    with app.app_context():
        db.session.add_all([
            OperationalControlActivation(control_key=active_key, scope_type="global", reason_text="Incident 7",
                                         expires_at=now + timedelta(hours=2)),
            OperationalControlActivation(control_key=expired_key, scope_type="global", reason_text="Old",
                                         expires_at=now - timedelta(minutes=5)),
        ])
        db.session.commit()
    client = signed_in(app, *OPS)
    html = client.get("/system/").get_data(as_text=True)

    def card(key):
        m = re.search(rf'data-health="{key}">.*?data-value>([^<]+)<.*?badge-(\w+)', html, re.S)
        return m.group(1), m.group(2)

    assert card("depth") == ("0", "ok") and card("oldest") == ("—", "ok")
    assert card("workers") == ("0", "warn")  # no worker, but nothing waiting either
    assert card("stale") == ("2", "bad")
    assert 'data-stale="queued">1 queued' in html and 'data-stale="running">1 running' in html
    assert "no progress for over 15 min" in html
    assert card("pauses") == ("1", "warn")
    assert registry.control_keys[active_key].label in html
    assert f'data-pause="{active_key}"' in html and f'data-pause="{expired_key}"' not in html
    assert 'href="/system/ops/controls"' in html

    # A job waiting with no worker: depth 1, its age from enqueued_at, workers bad.
    with app.app_context():
        # The id carries the app's prefix so the fixture's Redis cleanup removes the job too.
        job = get_queue("runs").enqueue("tenantpilot.timeutil.utcnow",
                                        job_id=f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-probe")
        job.connection.hset(job.key, "enqueued_at", utcformat(now - timedelta(minutes=20)))
    html = client.get("/system/").get_data(as_text=True)
    assert card("depth") == ("1", "warn") and card("workers") == ("0", "bad")
    oldest, badge = card("oldest")  # |duration: "20 min", or "20 min 1 sec" on a slow machine
    assert re.fullmatch(r"20 min( \d+ sec)?", oldest) and badge == "bad"
    runs_queue = f"{app.config['TENANTPILOT_QUEUE_PREFIX']}-runs"
    assert re.search(rf'data-queue="{runs_queue}">.*?data-depth>1<', html, re.S)

    # A live worker on the app's queues counts.
    worker = make_worker(app)
    worker.register_birth()
    try:
        html = client.get("/system/").get_data(as_text=True)
        assert card("workers") == ("1", "ok") and card("depth") == ("1", "ok")
    finally:
        worker.register_death()


def test_unknown_window_is_400_with_a_message_and_the_default_view(app, world):
    resp = signed_in(app, *OPS).get("/system/?window=1y")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Unknown window &#39;1y&#39;: choose 24h, 7d or 30d." in html
    assert kpis(html)["started"] == 5  # the 24h view
    # The selector marks what is shown: the default window.
    assert re.findall(r'data-window="(\w+)"\s+aria-current="page"', html) == ["24h"]


def test_console_needs_console_view(app, world, factory):
    factory.platform_user(email="noconsole@example.test", password="noconsole-pass-1",
                          capabilities=["platform.access_system_panel", "platform.ops.view"])
    resp = signed_in(app, "system", "noconsole@example.test", "noconsole-pass-1").get("/system/?window=7d")
    assert resp.status_code == 403
    assert "Control tower" not in resp.get_data(as_text=True)


def test_never_a_tenant_name_and_a_render_writes_nothing(app, world):
    client = signed_in(app, *OPS)
    writes, reads = [], []

    def watch(conn, cursor, statement, params, context, executemany):
        verb = statement.lstrip().split(None, 1)[0].upper()
        (writes if verb in ("INSERT", "UPDATE", "DELETE") else reads).append(statement)

    audit_before = count(app, AuditLog)
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", watch)
    try:
        for url in ("/system/", "/system/?window=24h", "/system/?window=7d", "/system/?window=30d",
                    "/system/?window=1y"):
            html = client.get(url).get_data(as_text=True)
            assert NOLEAK not in html, url
            assert "Control tower" in html
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert reads and writes == []  # the hook saw the page's queries, and none wrote
    assert count(app, AuditLog) == audit_before
