"""Product usage telemetry (SPEC 6): recorder rules, the start-seam source, windows and
the rollup against a direct count, the dashboard widget, retention."""
import json
import random
import re
import string
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tenantpilot import scheduler, seam, telemetry
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import (AuditLog, OperationalControlActivation, OperationRun, ProductUsageEvent,
                                ProductUsageHourly, ProductUsageWorkspace, User)
from tenantpilot.runs import Scope
from tenantpilot.testing import login
from tenantpilot.timeutil import utcnow
from tests.helpers import built_in_plugins, count, run_row

OPS = "product.operations.started"
FAMILIES = {
    "product.onboarding.checkpoint_completed": "Onboarding checkpoints",
    "product.support_diagnostics.opened": "Support diagnostics",
    "product.operations.started": "Operations started",
    "product.stored_report.created": "Stored reports",
    "product.review_pack.requested": "Review packs requested",
}


@pytest.fixture
def app(make_app):
    # The product's own families: the built-in plugins, not the installed worked example
    # (which adds a family of its own, as any third-party plugin may).
    return make_app(plugins=built_in_plugins())


@pytest.fixture
def world(app, factory):
    a, b, c = factory.workspace("Alpha WS"), factory.workspace("Bravo WS"), factory.workspace("Charlie WS")
    tenants = {ws.name: factory.tenant(ws, name=f"{ws.name} tenant") for ws in (a, b, c)}
    return (a, b, c), tenants


def event(app, tenant, when=None, name=OPS, **metadata):
    with app.app_context():
        return telemetry.record(name, workspace_id=tenant.workspace_id, tenant_id=tenant.id,
                                metadata=metadata or {"operation_type": "restore.execute"}, occurred_at=when)


def rows(app):
    with app.app_context():
        return [{"event": r.event_name, "meta": r.meta, "subject": (r.subject_type, r.subject_id), "user": r.user_id,
                 "tenant": r.tenant_id} for r in db.session.scalars(select(ProductUsageEvent).order_by(ProductUsageEvent.id))]


# --- catalog and recorder rules ------------------------------------------------------

def test_the_catalog_is_the_five_families_each_owned_by_its_feature_plugin(app):
    registry = app.extensions["tenantpilot"].registry
    assert {name: fam.label for name, fam in registry.event_families.items()} == FAMILIES
    owners = {name: registry.owners[("event", name)] for name in FAMILIES}
    assert owners == {"product.onboarding.checkpoint_completed": "onboarding",
                      "product.support_diagnostics.opened": "support_diagnostics",
                      "product.operations.started": "tenantpilot.telemetry_hooks",
                      "product.stored_report.created": "reports",
                      "product.review_pack.requested": "review_packs"}


@pytest.mark.parametrize("name, metadata, subject, error", [
    ("product.nope.happened", {}, None, "unknown telemetry event 'product.nope.happened'"),
    (OPS, {"reason": "restore.execute"}, None, "metadata key 'reason' is not allowed"),
    (OPS, {"operation_type": "Restore of the HR tenant"}, None, "machine-safe token"),       # free text
    (OPS, {"operation_type": "admin@contoso.example"}, None, "machine-safe token"),          # e-mail
    (OPS, {"operation_type": {"type": "restore.execute"}}, None, "not dict"),                # nested object
    (OPS, {"operation_type": ["restore.execute"]}, None, "not list"),                         # raw payload
    (OPS, {"operation_type": 1.5}, None, "not float"),
    (OPS, {"operation_type": "x" * 121}, None, "at most 120"),
    (OPS, {}, ("operation_run", "run 42"), "subject_id must be a machine-safe token"),
    (OPS, {}, ("operation run", "42"), "subject_type must be a machine-safe token"),
])
def test_refused_events_raise_in_validate_and_record_nothing(app, world, name, metadata, subject, error, caplog):
    _, tenants = world
    tenant = tenants["Alpha WS"]
    subject_type, subject_id = subject or (None, None)
    with app.app_context():
        with pytest.raises(telemetry.TelemetryError, match=re.escape(error)):
            telemetry.validate(name, workspace_id=tenant.workspace_id, tenant_id=tenant.id, metadata=metadata,
                               subject_type=subject_type, subject_id=subject_id)
        before = telemetry.error_count()
        assert telemetry.record(name, workspace_id=tenant.workspace_id, tenant_id=tenant.id, metadata=metadata,
                                subject_type=subject_type, subject_id=subject_id) is False
        assert telemetry.error_count() == before + 1  # counted …
    assert "telemetry event not recorded" in caplog.text  # … and logged
    assert count(app, ProductUsageEvent) == 0 and count(app, ProductUsageHourly) == 0


def test_a_future_event_is_refused(app, world):
    _, tenants = world
    assert not event(app, tenants["Alpha WS"], utcnow() + timedelta(minutes=10))
    assert count(app, ProductUsageEvent) == 0


def test_telemetry_needs_a_real_tenant_context(app, world):
    _, tenants = world
    tenant = tenants["Alpha WS"]
    with app.app_context():
        for ws, t in ((None, tenant.id), (tenant.workspace_id, None)):
            with pytest.raises(telemetry.TelemetryError, match="tenant-bound"):
                telemetry.validate(OPS, workspace_id=ws, tenant_id=t)


def test_accepted_values_are_tokens_ints_bools_and_timestamps_and_none_is_dropped(app, world):
    _, tenants = world
    tenant = tenants["Alpha WS"]
    when = utcnow().replace(microsecond=0)
    assert event(app, tenant, name="product.review_pack.requested", source_surface="tenant_dashboard",
                 include_operations=True, include_pii=None)
    assert event(app, tenant, name="product.onboarding.checkpoint_completed", checkpoint_key="verify_access",
                 lifecycle_state="ready_for_activation", completed_at=when)
    stored = rows(app)
    assert stored[0]["meta"] == {"source_surface": "tenant_dashboard", "include_operations": True}
    assert stored[1]["meta"]["completed_at"] == when.isoformat()


_value = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                   st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                   st.text(alphabet=string.ascii_letters + "@. _-:", max_size=30))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operation_type=_value, subject_id=st.one_of(st.none(), st.text(max_size=40),
                                                    st.text(alphabet="abc@ .-", max_size=10)))
def test_no_accepted_row_ever_holds_an_at_sign_or_a_space(app, operation_type, subject_id):
    with app.app_context():
        try:
            row = telemetry.validate(OPS, workspace_id=1, tenant_id=1, subject_type="operation_run",
                                     subject_id=subject_id, metadata={"operation_type": operation_type})
        except telemetry.TelemetryError:
            return
    serialized = json.dumps(row["meta"]) + (row["subject_type"] or "") + (row["subject_id"] or "")
    assert "@" not in serialized and " " not in serialized.replace('": ', '":').replace(", ", ",")
    for value in list(row["meta"].values()) + [row["subject_id"]]:
        assert not isinstance(value, str) or ("@" not in value and " " not in value)


# --- the first source: the start seam ---------------------------------------------------

def test_operations_started_is_recorded_once_for_a_person_starting_a_new_tenant_run(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="NoLeak Tenant Name")
    manager = factory.user(email="manager@example.test", memberships=[(ws, "manager")])
    scope = Scope("single_tenant", tenant_id=tenant.id)
    with app.app_context():
        human = Actor.human(db.session.get(User, manager.id))
        first = seam.start("findings.lifecycle.backfill", scope=scope, actor=human, source="tenant_ui")
        again = seam.start("findings.lifecycle.backfill", scope=scope, actor=human, source="tenant_ui")
        assert (first.status, again.status) == ("started", "deduped")
        system = seam.start("restore.backup_capture", scope=scope, actor=Actor.system("Scheduler"), source="cli")
        assert system.status == "started"
        run_id = first.run.id
    assert rows(app) == [{"event": OPS, "meta": {"operation_type": "findings.lifecycle.backfill"},
                          "subject": ("operation_run", str(run_id)), "user": manager.id, "tenant": tenant.id}]
    serialized = json.dumps(rows(app))
    assert "@" not in serialized and "NoLeak" not in serialized and "User" not in serialized


def test_blocked_refused_and_platform_wide_starts_record_nothing(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    operator = factory.user(email="operator@example.test", memberships=[(ws, "operator")])
    ops = factory.platform_user()
    with app.app_context():
        from tenantpilot.models import PlatformUser

        db.session.add(OperationalControlActivation(control_key="findings.lifecycle.backfill", scope_type="global",
                                                    reason_text="Hold all repairs"))
        db.session.commit()
        scope = Scope("single_tenant", tenant_id=tenant.id)
        assert seam.start("findings.lifecycle.backfill", scope=scope, source="tenant_ui",
                          actor=Actor.human(db.session.get(User, operator.id))).status == "forbidden"
        platform = Actor.platform(db.session.get(PlatformUser, ops.id))
        assert seam.start("findings.lifecycle.backfill", scope=scope, actor=platform,
                          source="system_ui").status == "blocked"
        assert seam.start("ops.pipeline_canary", scope=Scope("all_tenants"), actor=platform,
                          source="system_ui").status == "started"
    assert rows(app) == []


def manager_start(app, factory, on_start=None, **start_kw):
    """A tenant manager starts the findings backfill on a fresh tenant: (result, tenant, user
    id). ``on_start`` wraps just the seam call (a context manager factory)."""
    from contextlib import nullcontext

    ws = factory.workspace()
    tenant = factory.tenant(ws)
    manager = factory.user(memberships=[(ws, "manager")])
    with app.app_context():
        human = Actor.human(db.session.get(User, manager.id))
        db.session.commit()
        with (on_start or nullcontext)():
            result = seam.start("findings.lifecycle.backfill", scope=Scope("single_tenant", tenant_id=tenant.id),
                                actor=human, source="tenant_ui", **start_kw)
    return result, tenant, manager.id


def test_a_start_and_its_event_are_one_commit(app, factory):
    """The run, its tenant row and its usage event commit together: one commit per start
    (the recorder's own second commit is gone), and both rows are there after it."""
    from sqlalchemy import event as sa_event

    from contextlib import contextmanager

    commits = []

    def on_commit(conn):
        commits.append(conn)

    @contextmanager
    def counting_commits():
        sa_event.listen(db.engine, "commit", on_commit)
        try:
            yield
        finally:
            sa_event.remove(db.engine, "commit", on_commit)

    result, tenant, _ = manager_start(app, factory, on_start=counting_commits)
    assert result.status == "started"
    assert len(commits) == 1
    assert count(app, OperationRun, OperationRun.id == result.run.id) == 1
    assert [r["subject"] for r in rows(app)] == [("operation_run", str(result.run.id))]
    with app.app_context():
        assert telemetry.summary("24h").counts[OPS] == 1 and telemetry.summary("24h").active_workspaces == 1


def test_a_start_that_rolls_back_leaves_no_run_and_no_event(app, factory):
    """The event is written in the run's transaction: when the start's domain rows fail,
    the run and the event roll back together (and the rollups with them)."""
    def broken_domain_rows(run):
        raise RuntimeError("domain insert failed")

    with pytest.raises(RuntimeError, match="domain insert failed"):
        manager_start(app, factory, attach=broken_domain_rows)
    assert count(app, OperationRun) == 0
    assert rows(app) == []
    assert count(app, ProductUsageHourly) == 0 and count(app, ProductUsageWorkspace) == 0
    with app.app_context():
        from tenantpilot import spool

        assert spool.pending("telemetry") == 0


def test_a_start_whose_event_the_database_refuses_still_starts_and_the_event_is_replayed_once(
        app, factory, monkeypatch):
    """Telemetry never breaks the action: the refused write is confined to its savepoint,
    the run commits and is queued, and the event is spooled after that commit, then
    replayed exactly once with the run as its subject."""
    from tenantpilot import spool
    from tenantpilot.queue import get_queue

    real_write = telemetry.write

    def refused(*a, **kw):
        raise RuntimeError("database briefly refused the event")

    monkeypatch.setattr(telemetry, "write", refused)
    result, tenant, user_id = manager_start(app, factory)
    monkeypatch.setattr(telemetry, "write", real_write)
    assert result.status == "started"
    run = run_row(app, result.run.id)
    assert (run.status, run.tenants_total) == ("queued", 1)
    with app.app_context():
        assert len(get_queue("runs")) == 1
        assert spool.pending("telemetry") == 1
        assert telemetry.replay_spool() == 1
        assert telemetry.replay_spool() == 0
    assert rows(app) == [{"event": OPS, "meta": {"operation_type": "findings.lifecycle.backfill"},
                          "subject": ("operation_run", str(run.id)), "user": user_id, "tenant": tenant.id}]


def test_a_refused_event_of_a_start_that_rolls_back_is_not_spooled(app, factory, monkeypatch):
    def refused(*a, **kw):
        raise RuntimeError("database briefly refused the event")

    def broken_domain_rows(run):
        raise RuntimeError("domain insert failed")

    monkeypatch.setattr(telemetry, "write", refused)
    with pytest.raises(RuntimeError):
        manager_start(app, factory, attach=broken_domain_rows)
    with app.app_context():
        from tenantpilot import spool

        assert spool.pending("telemetry") == 0
    assert count(app, OperationRun) == 0


def test_a_start_the_queue_could_not_take_counts_no_operation_started(make_app, factory):
    """The event committed with the run; the enqueue failed after that commit, so the
    run is failed and its event taken back: no row, and both rollups agree."""
    app = make_app(plugins=built_in_plugins(), REDIS_URL="redis://127.0.0.1:1/0")
    f = type(factory)(app)
    ws = f.workspace()
    earlier = f.tenant(ws)
    with app.app_context():  # an earlier event of the same workspace stays
        assert telemetry.record(OPS, workspace_id=ws.id, tenant_id=earlier.id,
                                metadata={"operation_type": "restore.execute"},
                                occurred_at=utcnow() - timedelta(hours=3))
    tenant = f.tenant(ws)
    manager = f.user(memberships=[(ws, "manager")])
    with app.app_context():
        result = seam.start("findings.lifecycle.backfill", scope=Scope("single_tenant", tenant_id=tenant.id),
                            actor=Actor.human(db.session.get(User, manager.id)), source="tenant_ui")
    assert result.status == "enqueue_failed"
    run = run_row(app, result.run.id)
    assert (run.status, run.outcome) == ("completed", "failed")
    assert [r["tenant"] for r in rows(app)] == [earlier.id]
    with app.app_context():
        assert assert_exact("24h").counts[OPS] == 1
        assert assert_exact("24h").active_workspaces == 1
        # the workspace's latest event is the earlier one again, not the taken-back one
        latest = db.session.get(ProductUsageWorkspace, ws.id).last_event_at
        assert latest < utcnow() - timedelta(hours=2)


# --- windows, rollup == raw -----------------------------------------------------------

def assert_exact(window):
    """The summary equals a direct count over the raw rows, for the same instant."""
    now = utcnow()
    fast, raw = telemetry.summary(window, now=now), telemetry.raw_summary(window, now=now)
    assert fast == raw, window
    return fast


def test_windows_mirror_the_spec_case(app, world):
    (a, b, c), tenants = world
    now = utcnow()
    for offset, ws in ((timedelta(hours=1), "Alpha WS"), (timedelta(minutes=90), "Alpha WS"),
                       (timedelta(hours=2), "Bravo WS"), (timedelta(hours=3), "Bravo WS"),
                       (timedelta(days=2), "Charlie WS")):
        assert event(app, tenants[ws], now - offset)
    with app.app_context():
        day, week = telemetry.summary("24h"), telemetry.summary("7d")
        assert (day.total, day.active_workspaces, day.counts[OPS]) == (4, 2, 4)
        assert (week.total, week.active_workspaces) == (5, 3)
        assert day.counts["product.stored_report.created"] == 0  # every family, zeros included
        for window in telemetry.WINDOWS:
            assert_exact(window)


def test_rollup_equals_a_direct_count_over_the_raw_rows(app, world):
    (a, b, c), tenants = world
    rnd = random.Random(20261124)
    now = utcnow()
    names = list(FAMILIES)
    with app.app_context():  # 400 events over 40 days, some in the current hour and right at window edges
        offsets = [timedelta(seconds=rnd.randint(0, 40 * 86400)) for _ in range(390)]
        offsets += [timedelta(hours=24, seconds=-1), timedelta(days=7, seconds=-2), timedelta(days=30, seconds=-3),
                    timedelta(hours=24, seconds=5), timedelta(days=7, seconds=5), timedelta(seconds=1)]
        offsets += [timedelta(minutes=m) for m in (0, 1, 2, 59)]
        for off in offsets:
            tenant = tenants[rnd.choice(["Alpha WS", "Bravo WS", "Charlie WS"])]
            name = rnd.choice(names)
            meta = {"report_type": "permission_posture"} if name == "product.stored_report.created" else {}
            assert telemetry.record(name, workspace_id=tenant.workspace_id, tenant_id=tenant.id, metadata=meta,
                                    occurred_at=now - off)
        for window in telemetry.WINDOWS:
            assert assert_exact(window).total > 0
        # A rebuild from the raw rows gives the same rollups.
        before = sorted(db.session.execute(select(ProductUsageHourly.bucket_start, ProductUsageHourly.event_name,
                                                  ProductUsageHourly.count)).all())
        telemetry.rebuild_rollups()
        after = sorted(db.session.execute(select(ProductUsageHourly.bucket_start, ProductUsageHourly.event_name,
                                                 ProductUsageHourly.count)).all())
        assert before == after and sum(r[2] for r in after) == len(offsets)


# --- the dashboard widget -------------------------------------------------------------

def dashboard(app, factory, caps=None, window=None):
    client = app.test_client()
    user = factory.platform_user(capabilities=caps)
    assert login(client, "system", user.email, "platform-pass-123").status_code == 302
    return client.get("/system/" + (f"?window={window}" if window else ""))


def test_zero_state_says_so_and_shows_every_family_at_zero(app, factory, world):
    r = dashboard(app, factory)
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "Product telemetry" in html and "No telemetry recorded in Last 24 hours." in html
    for label in FAMILIES.values():
        assert label in html
    assert len(re.findall(r'data-telemetry="product\.[a-z_.]+">.*?data-count>0<', html, re.S)) == 5


def test_widget_shows_counts_per_window_and_never_a_tenant_name_or_subject_id(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws, name="NoLeak Tenant Name")
    now = utcnow()
    with app.app_context():
        assert telemetry.record("product.review_pack.requested", workspace_id=ws.id, tenant_id=tenant.id,
                                subject_type="review_pack", subject_id="review-pack-raw-424242",
                                metadata={"source_surface": "tenant_dashboard", "include_operations": True,
                                          "include_pii": False}, occurred_at=now - timedelta(hours=2))
        assert telemetry.record(OPS, workspace_id=ws.id, tenant_id=tenant.id, metadata={"operation_type": "x.y"},
                                occurred_at=now - timedelta(days=3))
    day = dashboard(app, factory).get_data(as_text=True)
    week = dashboard(app, factory, window="7d").get_data(as_text=True)
    assert "1 event in Last 24 hours" in day and "2 events in Last 7 days" in week
    assert re.search(r'data-telemetry="product\.review_pack\.requested">.*?data-count>1<', day, re.S)
    assert re.search(r'data-telemetry="product\.operations\.started">.*?data-count>0<', day, re.S)
    assert re.search(r'data-telemetry="product\.operations\.started">.*?data-count>1<', week, re.S)
    assert day.count("<polyline") == 5
    for html in (day, week, dashboard(app, factory, window="30d").get_data(as_text=True)):
        assert "NoLeak Tenant Name" not in html and "review-pack-raw-424242" not in html


def test_dashboard_needs_console_view(app, factory):
    assert dashboard(app, factory, caps=["platform.access_system_panel", "platform.ops.view"]).status_code == 403


def test_passive_renders_write_no_telemetry_and_no_audit(app, factory, drain):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    factory.user(email="owner@example.test", memberships=[(ws, "owner")])
    with app.app_context():
        run = seam.start("restore.backup_capture", scope=Scope("single_tenant", tenant_id=tenant.id),
                         actor=Actor.system(), source="cli").run
        run_id = run.id
    ops_client = app.test_client()
    ops = factory.platform_user()
    login(ops_client, "system", ops.email, "platform-pass-123")
    tenant_client = app.test_client()
    login(tenant_client, "admin", "owner@example.test", "user-pass-123")
    audit_before, events_before = count(app, AuditLog), count(app, ProductUsageEvent)
    for client, url in ((ops_client, "/system/"), (ops_client, "/system/?window=30d"),
                        (ops_client, f"/system/ops/runs/{run_id}"), (tenant_client, f"/admin/t/{tenant.id}/"),
                        (tenant_client, f"/admin/t/{tenant.id}/findings"),
                        (tenant_client, f"/admin/t/{tenant.id}/runs/{run_id}"),
                        (tenant_client, f"/admin/t/{tenant.id}/restore-runs")):
        assert client.get(url).status_code == 200, url
    assert count(app, AuditLog) == audit_before and count(app, ProductUsageEvent) == events_before


# --- retention --------------------------------------------------------------------------

def test_prune_removes_only_old_events_and_keeps_the_summary_exact(app, world):
    (a, b, c), tenants = world
    now = utcnow()
    for days, ws in ((1, "Alpha WS"), (10, "Bravo WS"), (95, "Charlie WS"), (120, "Charlie WS")):
        assert event(app, tenants[ws], now - timedelta(days=days))
    kept = _old_report_and_pack(app, tenants["Charlie WS"], now - timedelta(days=120))
    runs_before, audit_before = count(app, OperationRun), count(app, AuditLog)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["telemetry", "prune"])
    assert result.exit_code == 0 and "Deleted 2 product usage events older than 90 days." in result.output
    result = runner.invoke(args=["telemetry", "prune", "--days", "5"])
    assert "Deleted 1 product usage event older than 5 days." in result.output
    assert count(app, ProductUsageEvent) == 1
    assert count(app, OperationRun) == runs_before and count(app, AuditLog) == audit_before
    assert _old_report_and_pack(app) == kept  # SPEC 6: pruning never touches reports or packs
    with app.app_context():
        assert db.session.scalar(select(ProductUsageWorkspace.workspace_id)) == a.id  # the others have no events
        for window in telemetry.WINDOWS:
            assert_exact(window)


def _old_report_and_pack(app, tenant=None, when=None):
    """With a tenant: store a report and a (still valid) review pack made ``when``, older
    than any retention. Then, and without one: the (id, created_at) of every stored report
    and review pack, to compare before and after a prune."""
    from tenantpilot_reports.models import StoredReport
    from tenantpilot_review_packs.models import ReviewPack

    with app.app_context():
        if tenant is not None:
            db.session.add(StoredReport(tenant_id=tenant.id, report_type="permission_posture", summary={},
                                        fingerprint="f" * 64, created_at=when))
            db.session.add(ReviewPack(workspace_id=tenant.workspace_id, tenant_id=tenant.id, status="ready",
                                      created_at=when, generated_at=when, expires_at=utcnow() + timedelta(days=7)))
            db.session.commit()
        found = {model.__tablename__: db.session.execute(select(model.id, model.created_at).order_by(model.id)).all()
                 for model in (StoredReport, ReviewPack)}
    assert all(len(rows) == 1 for rows in found.values()), found
    return found


@pytest.mark.parametrize("days", ["0", "-3"])
def test_prune_rejects_less_than_one_day(app, world, days):
    _, tenants = world
    event(app, tenants["Alpha WS"], utcnow() - timedelta(days=200))
    result = app.test_cli_runner().invoke(args=["telemetry", "prune", "--days", days])
    assert result.exit_code != 0 and "must be at least 1" in result.output
    assert count(app, ProductUsageEvent) == 1


def test_prune_runs_daily_from_the_one_scheduler(app, make_app, world):
    _, tenants = world
    event(app, tenants["Alpha WS"], utcnow() - timedelta(days=100))
    job = app.extensions["tenantpilot"].registry.scheduled_jobs["telemetry.prune"]
    assert job.interval_seconds == 86400
    other = make_app()  # a second scheduler process on the same database
    assert "telemetry.prune" in scheduler.run_due(app)
    assert "telemetry.prune" not in scheduler.run_due(other)
    assert count(app, ProductUsageEvent) == 0
