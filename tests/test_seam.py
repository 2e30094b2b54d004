"""The start seam and the run ledger: idempotency, capability and control gates,
scope lock, queue outages, cancel, counting."""
import threading
from datetime import timedelta

import pytest

from tenantpilot import runs, seam
from tenantpilot.actors import Actor
from tenantpilot.api import Runbook
from tenantpilot.extensions import db
from tenantpilot.models import Notification, OperationalControlActivation, OperationRun
from tenantpilot.runs import Scope
from tenantpilot.timeutil import utcnow
from tests.helpers import audit_rows, count, platform_actor, queued_jobs, run_row, tenant_rows
from tests.support import fanout_plugin


@pytest.fixture
def app(make_app):
    return make_app(plugins=[fanout_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=25)


def start(app, actor, scope=Scope("all_tenants"), **kw):
    with app.app_context():
        result = seam.start("tests.fanout", scope=scope, actor=actor, source=kw.pop("source", "system_ui"), **kw)
        return result.status, (result.run.id if result.run else None), result


def pause(app, scope_type="global", workspace_id=None, reason="Vendor incident, hold all repairs", expires_at=None):
    with app.app_context():
        db.session.add(OperationalControlActivation(control_key="tests.fanout", scope_type=scope_type,
                                                    workspace_id=workspace_id, reason_text=reason,
                                                    expires_at=expires_at))
        db.session.commit()


def test_two_concurrent_starts_create_exactly_one_run(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 5)
    actor = platform_actor(app, factory.platform_user())
    for round_no in range(5):
        barrier = threading.Barrier(2)
        results = []

        def worker():
            with app.app_context():
                barrier.wait()
                r = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=actor, source="api",
                               identity_inputs={"round": round_no})
                results.append((r.status, r.run.id))
                db.session.remove()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        statuses = sorted(s for s, _ in results)
        assert statuses == ["deduped", "started"], statuses
        assert results[0][1] == results[1][1]
        # The scope lock keeps the next round out while this run is active: finish it first.
        with app.app_context():
            runs.cancel(results[0][1])
    assert count(app, OperationRun) == 5


def test_dedup_says_already_queued_and_creates_nothing(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 3)
    actor = platform_actor(app, factory.platform_user())
    status, run_id, _ = start(app, actor)
    jobs_before = queued_jobs(app)
    status2, run_id2, result = start(app, actor)
    assert (status, status2) == ("started", "deduped")
    assert run_id2 == run_id
    assert "already queued" in result.message
    assert count(app, OperationRun) == 1
    assert queued_jobs(app) == jobs_before


def test_scope_lock_keeps_a_second_all_tenants_fan_out_out(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 3)
    actor = platform_actor(app, factory.platform_user())
    _, first, _ = start(app, actor, identity_inputs={"variant": "a"})
    status, second, result = start(app, actor, identity_inputs={"variant": "b"})
    assert status == "scope_busy" and second == first
    assert count(app, OperationRun) == 1


def test_completed_run_frees_the_identity(app, factory, drain):
    ws = factory.workspace()
    factory.tenants(ws, 2)
    actor = platform_actor(app, factory.platform_user())
    _, first, _ = start(app, actor)
    drain()
    status, second, _ = start(app, actor)
    assert status == "started" and second != first


def test_fan_out_counts_failures_and_completes_once(app, factory, drain):
    ws = factory.workspace()
    ids = factory.tenants(ws, 30)
    factory.tenant(ws, name="fail-one")
    factory.tenant(ws, name="boom-two")
    user = factory.platform_user()
    status, run_id, _ = start(app, platform_actor(app, user))
    assert status == "started"
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (32, 32, 2)
    assert run.summary_counts == {"processed": 30, "updated": 30, "tenants": 32, "failed": 2}
    reasons = sorted(f["reason_code"] for f in run.failure_summary)
    assert reasons == ["simulated_failure", "unexpected_error"]
    text = str(run.failure_summary)
    assert "@" not in text and "secret-token" not in text and "Traceback" not in text
    # Exactly one completion → exactly one notification to the initiator.
    assert count(app, Notification, Notification.run_id == run_id, Notification.kind == "operations.run.completed") == 1
    assert len(ids) == 30


def test_all_tenants_failing_gives_failed_outcome(app, factory, drain):
    ws = factory.workspace()
    for i in range(3):
        factory.tenant(ws, name=f"fail-{i}")
    _, run_id, _ = start(app, platform_actor(app, factory.platform_user()))
    drain()
    assert run_row(app, run_id).outcome == "failed"


def test_system_initiated_run_notifies_nobody(app, factory, drain):
    ws = factory.workspace()
    factory.tenants(ws, 2)
    _, run_id, _ = start(app, Actor.system("Deploy hook"), source="deploy_hook")
    drain()
    assert run_row(app, run_id).outcome == "succeeded"
    assert count(app, Notification) == 0


def test_global_pause_blocks_with_no_run_no_job_and_a_platform_audit_event(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 3)
    user = factory.platform_user()
    pause(app)
    status, run_id, result = start(app, platform_actor(app, user))
    assert status == "blocked" and run_id is None
    assert result.extra["title"] == "Fan-out test paused"
    assert result.message == "Fan-out test is currently paused. Vendor incident, hold all repairs"
    assert count(app, OperationRun) == 0
    assert queued_jobs(app) == 0
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert event.status == "blocked"
    assert (event.workspace_id, event.tenant_id) == (None, None)
    assert event.meta["requested_scope"] == "all_tenants"
    assert event.meta["control_key"] == "tests.fanout" and event.meta["actor_id"] == user.id
    # What the audit log page shows: who, on what, and why.
    assert (event.actor_type, event.actor_id) == ("platform", user.id)
    assert (event.target_type, event.target_id, event.target_label) == ("operation_type", "tests.fanout", "Fan-out test")
    assert event.summary == "Fan-out test blocked: control tests.fanout is paused"
    assert event.meta["source"] == "system_ui" and event.meta["reason"] == "Vendor incident, hold all repairs"


def test_blocked_single_tenant_start_is_owned_by_that_workspace_and_tenant(app, factory):
    ws = factory.workspace()
    tenant = factory.tenant(ws)
    expires = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    pause(app, "workspace", ws.id, expires_at=expires)
    status, _, _ = start(app, platform_actor(app, factory.platform_user()),
                         scope=Scope("single_tenant", tenant_id=tenant.id), source="cli",
                         context={"blocked_metadata": {"backup_set_id": 7}})
    assert status == "blocked"
    [event] = audit_rows(app, "operational_control.execution_blocked")
    assert (event.workspace_id, event.tenant_id) == (ws.id, tenant.id)
    assert event.meta["scope_type"] == "workspace"
    # The matched pause and the refused request, as the audit detail page lists them; a
    # caller's blocked_metadata (restore: the backup set) is carried along.
    assert {k: event.meta[k] for k in ("workspace_id", "expires_at", "requested_scope", "requested_workspace_id",
                                       "requested_tenant_id", "source", "backup_set_id")} == {
        "workspace_id": ws.id, "expires_at": expires.isoformat(), "requested_scope": "single_tenant",
        "requested_workspace_id": ws.id, "requested_tenant_id": tenant.id, "source": "cli", "backup_set_id": 7}


def test_global_pause_wins_and_workspace_pause_only_skips_its_tenants(app, factory, drain):
    ws_a, ws_b = factory.workspace(), factory.workspace()
    a_ids = factory.tenants(ws_a, 3)
    b_ids = factory.tenants(ws_b, 4)
    actor = platform_actor(app, factory.platform_user())
    pause(app, "workspace", ws_a.id)
    # Workspace B starts normally while A is paused.
    assert start(app, actor, scope=Scope("workspace", workspace_id=ws_b.id))[0] == "started"
    assert start(app, actor, scope=Scope("workspace", workspace_id=ws_a.id))[0] == "blocked"
    status, run_id, _ = start(app, actor)
    assert status == "started"
    drain()
    rows = tenant_rows(app, run_id)
    assert {rows[t] for t in a_ids} == {("skipped", "paused", None)}
    assert {rows[t][0] for t in b_ids} == {"succeeded"}
    run = run_row(app, run_id)
    assert (run.tenants_skipped, run.outcome) == (3, "succeeded")

    # Now a global pause on top of A's workspace pause: the global one wins everywhere, so
    # the operator reads the global reason (not A's), and B, which has no pause of its own,
    # is blocked too. The workspace row was inserted first, so insertion order cannot hide
    # a reversed precedence.
    pause(app, reason="Platform-wide freeze for the DB upgrade")
    runs_before = count(app, OperationRun)
    for scope in (Scope("workspace", workspace_id=ws_a.id), Scope("single_tenant", tenant_id=a_ids[0]),
                  Scope("workspace", workspace_id=ws_b.id), Scope("all_tenants")):
        status, blocked_run, result = start(app, actor, scope=scope)
        assert (status, blocked_run) == ("blocked", None), scope
        assert result.decision.matched_scope == "global" and result.decision.workspace_id is None, scope
        assert result.message == "Fan-out test is currently paused. Platform-wide freeze for the DB upgrade"
    assert count(app, OperationRun) == runs_before
    events = audit_rows(app, "operational_control.execution_blocked")[1:]  # [0]: A's blocked start above
    assert [e.meta["scope_type"] for e in events] == ["global"] * 4
    assert {e.meta["reason"] for e in events} == {"Platform-wide freeze for the DB upgrade"}


def test_expired_pause_is_ignored(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 1)
    pause(app, expires_at=utcnow() - timedelta(minutes=1))
    assert start(app, platform_actor(app, factory.platform_user()))[0] == "started"


def test_break_glass_does_not_bypass_a_pause(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 1)
    pause(app)
    with app.app_context():
        from tenantpilot.models import PlatformUser

        user = factory.platform_user()
        actor = Actor.platform(db.session.get(PlatformUser, user.id), break_glass=True)
    assert start(app, actor)[0] == "blocked"


def test_break_glass_is_recorded_in_the_run_context(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 1)
    with app.app_context():
        from tenantpilot.models import PlatformUser

        actor = Actor.platform(db.session.get(PlatformUser, factory.platform_user().id), break_glass=True)
    status, run_id, _ = start(app, actor, context={"reason_code": "INCIDENT"})
    context = run_row(app, run_id).context
    assert status == "started"
    assert context["break_glass"] is True and context["initiator"]["break_glass"] is True
    assert context["source"] == "system_ui" and context["reason_code"] == "INCIDENT"
    assert "email" not in context["initiator"]


def test_capability_checks_at_the_seam(app, factory):
    ws, other = factory.workspace(), factory.workspace()
    tenant = factory.tenant(ws)
    no_runbook_cap = factory.platform_user(capabilities=["platform.access_system_panel", "platform.runbooks.run"])
    assert start(app, platform_actor(app, no_runbook_cap))[0] == "forbidden"
    outsider = factory.user(memberships=[(other, "owner")])
    status, _, _ = start(app, Actor.human(outsider), scope=Scope("single_tenant", tenant_id=tenant.id),
                         source="tenant_ui")
    assert status == "not_found"
    member = factory.user(memberships=[(ws, "owner")])
    # The test runbook declares no tenant capabilities: not startable from the tenant plane.
    status, _, _ = start(app, Actor.human(member), scope=Scope("single_tenant", tenant_id=tenant.id),
                         source="tenant_ui")
    assert status == "forbidden"
    assert count(app, OperationRun) == 0


def test_tenants_being_onboarded_are_in_no_run_but_their_own(app, factory):
    """SPEC 3 step 2: a tenant still onboarding (or archived) is outside every fleet run
    and preflight count, and a single-tenant start of an ordinary operation on it is 404."""
    ws = factory.workspace()
    live = factory.tenant(ws, "Live")
    draft = factory.tenant(ws, "Draft", status="onboarding")
    factory.tenant(ws, "Gone", status="archived")
    actor = platform_actor(app, factory.platform_user())
    status, run_id, _ = start(app, actor)
    assert status == "started"
    assert list(tenant_rows(app, run_id)) == [live.id]
    assert start(app, actor, scope=Scope("single_tenant", tenant_id=draft.id))[0] == "not_found"
    with app.app_context():
        assert [t for t, _ in runs.tenant_universe(Scope("workspace", ws.id))] == [live.id]
        # An operation type that declares it (onboarding's verification) may target it.
        assert [t for t, _ in runs.tenant_universe(Scope("single_tenant", tenant_id=draft.id),
                                                   ("onboarding",))] == [draft.id]


def test_operation_types_cannot_target_archived_tenants():
    from tenantpilot.api import DefinitionError, OperationType

    with pytest.raises(DefinitionError):
        OperationType(key="tests.bad", label="Bad", execute_tenant=lambda job: {}, tenant_statuses=("archived",))


def test_tenant_plane_capabilities_404_then_403_then_allowed(make_app, factory):
    from tenantpilot import hookimpl

    class TenantRunbook:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return Runbook(key="tests.tenant_action", label="Tenant action", description="",
                           capability="platform.runbooks.tests.tenant_action", confirmation_word="GO",
                           execute_tenant=lambda job: {}, preflight=lambda s: {},
                           tenant_capabilities=("tenant.manage",))

    app = make_app(plugins=[("tenant-runbook", TenantRunbook())])
    f = type(factory)(app)
    ws, other = f.workspace(), f.workspace()
    tenant = f.tenant(ws)
    scope = Scope("single_tenant", tenant_id=tenant.id)
    cases = [(f.user(memberships=[(other, "owner")]), "not_found"),
             (f.user(memberships=[(ws, "operator")]), "forbidden"),
             (f.user(memberships=[(ws, "readonly")]), "forbidden"),
             (f.user(memberships=[(ws, "manager")]), "started")]
    for user, expected in cases:
        with app.app_context():
            result = seam.start("tests.tenant_action", scope=scope, actor=Actor.human(user), source="tenant_ui",
                                identity_inputs={"user": user.id})
        assert result.status == expected, (user.email, result.status)
    # A tenant user never starts a workspace-wide run, even as its owner: 403.
    owner = f.user(memberships=[(ws, "owner")])
    with app.app_context():
        result = seam.start("tests.tenant_action", scope=Scope("workspace", workspace_id=ws.id),
                            actor=Actor.human(owner), source="tenant_ui")
    assert (result.status, result.http_status) == ("forbidden", 403)


def test_a_member_holding_exactly_the_required_capabilities_may_start(make_app, factory):
    from tenantpilot import hookimpl
    from tenantpilot.api import OperationType

    class ViewOnly:
        @hookimpl
        def tenantpilot_register_operation_types(self, app):
            return OperationType(key="tests.view_only", label="View only", execute_tenant=lambda job: {},
                                 tenant_capabilities=("tenant.view",), scopes=("single_tenant",))

    app = make_app(plugins=[("view-only", ViewOnly())])
    f = type(factory)(app)
    ws = f.workspace()
    tenant = f.tenant(ws)
    reader = f.user(memberships=[(ws, "readonly")])  # its capabilities are exactly {tenant.view}
    with app.app_context():
        result = seam.start("tests.view_only", scope=Scope("single_tenant", tenant_id=tenant.id),
                            actor=Actor.human(reader), source="tenant_ui")
    assert result.status == "started"


def test_queue_outage_marks_the_run_failed_instead_of_leaving_it_queued(make_app, factory):
    app = make_app(plugins=[fanout_plugin], REDIS_URL="redis://127.0.0.1:1/0")
    f = type(factory)(app)
    ws = f.workspace()
    f.tenants(ws, 3)
    status, run_id, result = start(app, platform_actor(app, f.platform_user()))
    assert status == "enqueue_failed"
    assert "unreachable" in result.message
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "failed")
    assert run.failure_summary[0]["reason_code"] == "enqueue_failed"
    assert count(app, OperationRun, OperationRun.status == "queued") == 0


def test_cancel_stops_pending_tenants_and_running_ones_finish(app, factory, drain):
    from tenantpilot.queue import make_worker

    ws = factory.workspace()
    factory.tenants(ws, 60)
    _, run_id, _ = start(app, platform_actor(app, factory.platform_user()))
    make_worker(app, thread=True).work(burst=True, max_jobs=1, logging_level="WARNING")  # one batch of 25
    with app.app_context():
        assert runs.cancel(run_id) is True
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "cancelled")
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert statuses.count("succeeded") == 25 and statuses.count("cancelled") == 35
    assert run.summary_counts["processed"] == 25 and run.tenants_done == 60
    with app.app_context():
        assert runs.cancel(run_id) is False  # no longer active


def test_unknown_summary_key_fails_that_tenant_only(make_app, factory, drain):
    from tenantpilot import hookimpl

    class BadCounts:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return Runbook(key="tests.bad_counts", label="Bad counts", description="",
                           capability="platform.runbooks.tests.bad_counts", confirmation_word="GO",
                           execute_tenant=lambda job: {"rows_touched": 3}, preflight=lambda s: {})

    app = make_app(plugins=[("bad", BadCounts())])
    f = type(factory)(app)
    f.tenants(f.workspace(), 2)
    with app.app_context():
        from tenantpilot.models import PlatformUser

        actor = Actor.platform(db.session.get(PlatformUser, f.platform_user().id))
        run_id = seam.start("tests.bad_counts", scope=Scope("all_tenants"), actor=actor, source="api").run.id
    drain(app)
    run = run_row(app, run_id)
    assert run.outcome == "failed" and run.tenants_failed == 2


def test_a_scope_the_runbook_does_not_support_is_refused(make_app, factory):
    from tenantpilot import hookimpl

    class TenantOnly:
        @hookimpl
        def tenantpilot_register_runbooks(self, app):
            return Runbook(key="tests.tenant_only", label="Tenant only", description="",
                           capability="platform.runbooks.tests.tenant_only", confirmation_word="GO",
                           execute_tenant=lambda job: {}, preflight=lambda s: {}, scopes=("single_tenant",))

    app = make_app(plugins=[("tenant-only", TenantOnly())])
    f = type(factory)(app)
    f.tenants(f.workspace(), 2)
    with app.app_context():
        result = seam.start("tests.tenant_only", scope=Scope("all_tenants"), actor=Actor.system(), source="cli")
    assert result.status == "invalid" and "cannot run with scope all tenants" in result.message
    assert count(app, OperationRun) == 0


def test_a_run_limited_to_some_tenants_is_its_own_identity(app, factory):
    ws = factory.workspace()
    ids = factory.tenants(ws, 4)
    actor = Actor.system()
    scope = Scope("workspace", workspace_id=ws.id)
    first = start(app, actor, scope=scope, source="cli")
    retry = start(app, actor, scope=scope, source="cli", tenant_ids=ids[:2])
    assert first[0] == "started" and retry[0] == "started" and first[1] != retry[1]
    assert run_row(app, retry[1]).tenants_total == 2


def test_a_failing_completion_hook_does_not_stop_the_others(make_app, factory, drain):
    from tenantpilot import hookimpl

    class Explodes:
        @hookimpl(tryfirst=True)  # runs before the core's notification
        def tenantpilot_run_completed(self, run):
            raise RuntimeError("plugin bug")

    app = make_app(plugins=[fanout_plugin, ("explodes", Explodes())])
    f = type(factory)(app)
    f.tenants(f.workspace(), 2)
    _, run_id, _ = start(app, platform_actor(app, f.platform_user()))
    drain(app)
    assert run_row(app, run_id).outcome == "succeeded"
    assert count(app, Notification, Notification.run_id == run_id, Notification.kind == "operations.run.completed") == 1


def test_orphaned_batches_are_recovered_and_the_run_completes(make_app, factory, drain):
    """Jobs lost from Redis, or a tenant left 'running' by a commit whose job ended (e.g.
    PostgreSQL went away mid-job): the reaper's sweep recovers them."""
    from sqlalchemy import update

    from tenantpilot.jobs import recover_orphaned_runs
    from tenantpilot.models import OperationRunTenant
    from tenantpilot.queue import all_queues

    app = make_app(plugins=[fanout_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=5, TENANTPILOT_ORPHAN_MIN_AGE=0)
    f = type(factory)(app)
    ids = f.tenants(f.workspace(), 12)
    _, run_id, _ = start(app, Actor.system(), source="cli")
    with app.app_context():
        assert recover_orphaned_runs(0) == 0  # queued jobs are alive: nothing to do
        for q in all_queues(app):  # the jobs vanish (job by job: fakeredis has no Lua for q.empty())
            for job in q.get_jobs():
                job.delete()
        db.session.execute(update(OperationRunTenant).where(OperationRunTenant.run_id == run_id,
                                                            OperationRunTenant.tenant_id == ids[0])
                           .values(status="running"))
        db.session.commit()
        assert recover_orphaned_runs(0) == 3  # three batches of 5, 5 and 2
    drain(app)
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_done, run.tenants_failed, run.summary_counts["processed"]) == (12, 1, 11)
    assert tenant_rows(app, run_id)[ids[0]][:2] == ("failed", "worker_lost")


def test_after_commit_effects_run_after_the_tenants_commit_and_never_for_a_failure(make_app, factory, drain):
    """TenantJob.after_commit: the effect sees the executor's committed writes; a failed
    tenant's effects never run; a raising effect leaves the tenant succeeded."""
    from tenantpilot import hookimpl
    from tenantpilot.api import OperationType, TenantJobError
    from tenantpilot.models import Tenant

    seen = []

    def execute(job):
        tenant = db.session.get(Tenant, job.tenant_id)
        if tenant.name == "fails":
            job.after_commit(lambda: seen.append(("never", job.tenant_id)))
            raise TenantJobError("nope", "fails on purpose")
        tenant.name = tenant.name + " (touched)"

        def effect():
            # Read back through a fresh session: the write is committed by now.
            db.session.remove()
            seen.append(("after", db.session.get(Tenant, job.tenant_id).name))

        if tenant.name.startswith("raises"):
            job.after_commit(lambda: 1 / 0)
        job.after_commit(effect)
        return {"processed": 1}

    class Effects:
        @hookimpl
        def tenantpilot_register_operation_types(self, app):
            return OperationType(key="tests.effects", label="Effects", execute_tenant=execute,
                                 platform_capabilities=("platform.ops.view",))

    app = make_app(plugins=[("effects", Effects())])
    f = type(factory)(app)
    ws = f.workspace()
    ok, bad, raising = f.tenant(ws, "ok"), f.tenant(ws, "fails"), f.tenant(ws, "raises")
    with app.app_context():
        run_id = seam.start("tests.effects", scope=Scope("all_tenants"), actor=platform_actor(app, f.platform_user()),
                            source="cli").run.id
    drain(app)
    assert sorted(seen) == [("after", "ok (touched)"), ("after", "raises (touched)")]
    rows = tenant_rows(app, run_id)
    assert rows[ok.id][0] == "succeeded" and rows[raising.id][0] == "succeeded"
    assert rows[bad.id][:2] == ("failed", "nope")


def test_a_run_records_when_it_started_and_completed(app, factory, drain):
    """The run pages show both times: a run with nothing to do completes at creation and
    starts then too; a dispatched run started before it completed."""
    empty, ws = factory.workspace(), factory.workspace()
    factory.tenants(ws, 2)
    actor = Actor.system()
    _, nothing, _ = start(app, actor, scope=Scope("workspace", workspace_id=empty.id), source="cli")
    run = run_row(app, nothing)
    assert (run.status, run.outcome, run.tenants_total) == ("completed", "succeeded", 0)
    assert run.completed_at is not None and run.started_at == run.completed_at
    _, dispatched, _ = start(app, actor, scope=Scope("workspace", workspace_id=ws.id), source="cli")
    assert run_row(app, dispatched).completed_at is None
    drain()
    run = run_row(app, dispatched)
    assert run.status == "completed" and run.started_at is not None and run.completed_at is not None
    assert run.started_at < run.completed_at


def test_an_open_circuit_fails_the_run_though_the_rest_was_cancelled(make_app, factory, drain):
    """Three failures in a row trip the breaker (minimum 3 tenants, ratio 0.5); the five
    tenants still pending are cancelled, and the run reads failed, not partially succeeded."""
    app = make_app(plugins=[fanout_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=1, TENANTPILOT_CIRCUIT_MIN_TENANTS=3)
    f = type(factory)(app)
    ws = f.workspace()
    for i in range(3):
        f.tenant(ws, name=f"fail-{i}")  # lowest ids: their jobs run first
    f.tenants(ws, 5)
    _, run_id, _ = start(app, Actor.system(), source="cli")
    drain(app)
    run = run_row(app, run_id)
    assert (run.status, run.outcome, run.cancel_requested) == ("completed", "failed", False)
    assert (run.tenants_done, run.tenants_failed) == (8, 3)
    assert run.failure_summary[0]["reason_code"] == "circuit_open"
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert sorted(statuses) == ["cancelled"] * 5 + ["failed"] * 3


def test_failed_items_in_finished_tenants_make_the_run_partially_succeeded(make_app, factory, drain):
    from tenantpilot import hookimpl
    from tenantpilot.api import OperationType

    class ItemsFailing:
        @hookimpl
        def tenantpilot_register_operation_types(self, app):
            return OperationType(key="tests.items", label="Items", summary_keys=("applied", "items_failed"),
                                 partial_failure_key="items_failed",
                                 execute_tenant=lambda job: {"applied": 2, "items_failed": job.tenant_id % 2})

    app = make_app(plugins=[("items", ItemsFailing())])
    f = type(factory)(app)
    ws = f.workspace()
    ids = f.tenants(ws, 2)
    outcomes = {}
    for tenant_id in ids:
        with app.app_context():
            outcomes[tenant_id] = seam.start("tests.items", scope=Scope("single_tenant", tenant_id=tenant_id),
                                             actor=Actor.system(), source="cli").run.id
    drain(app)
    for tenant_id, run_id in outcomes.items():
        run = run_row(app, run_id)
        assert (run.tenants_failed, run.summary_counts["items_failed"]) == (0, tenant_id % 2)
        assert run.outcome == ("partially_succeeded" if tenant_id % 2 else "succeeded"), tenant_id


def test_an_expired_or_another_controls_pause_blocks_and_skips_nothing(app, factory, drain):
    """Only a live pause of this operation's own control key blocks it, or skips a
    workspace's tenants in an all-tenants run."""
    ws_a, ws_b = factory.workspace(), factory.workspace()
    factory.tenants(ws_a, 2)
    factory.tenants(ws_b, 2)
    pause(app, "workspace", ws_a.id, expires_at=utcnow() - timedelta(seconds=1))
    with app.app_context():
        for scope_type, workspace_id in (("workspace", ws_b.id), ("global", None)):
            db.session.add(OperationalControlActivation(control_key="tests.other", scope_type=scope_type,
                                                        workspace_id=workspace_id, reason_text="Another control"))
        db.session.commit()
    status, run_id, _ = start(app, Actor.system(), source="cli")
    assert status == "started"
    drain()
    run = run_row(app, run_id)
    assert (run.tenants_total, run.tenants_skipped, run.outcome) == (4, 0, "succeeded")
    assert {s for s, _, _ in tenant_rows(app, run_id).values()} == {"succeeded"}
    assert audit_rows(app, "operational_control.execution_blocked") == []


def test_a_running_run_still_holds_its_identity_and_the_scope_lock(app, factory):
    """Dedup and the scope lock hold while a run is running, not only while queued."""
    factory.tenants(factory.workspace(), 2)
    actor = Actor.system()
    _, first, _ = start(app, actor, source="cli", identity_inputs={"variant": "a"})
    with app.app_context():
        runs.mark_running(first)
    assert run_row(app, first).status == "running"
    assert start(app, actor, source="cli", identity_inputs={"variant": "a"})[:2] == ("deduped", first)
    assert start(app, actor, source="cli", identity_inputs={"variant": "b"})[:2] == ("scope_busy", first)
    assert count(app, OperationRun) == 1


def test_every_attempted_tenant_failing_is_a_failed_run_though_some_were_skipped(app, factory, drain):
    ws_paused, ws = factory.workspace(), factory.workspace()
    factory.tenants(ws_paused, 1)
    for i in range(2):
        factory.tenant(ws, name=f"fail-{i}")
    pause(app, "workspace", ws_paused.id)
    _, run_id, _ = start(app, Actor.system(), source="cli")
    drain()
    run = run_row(app, run_id)
    assert (run.tenants_skipped, run.tenants_failed, run.outcome) == (1, 2, "failed")


def test_a_workspace_pause_with_an_expiry_skips_its_tenants_until_then(app, factory, drain):
    ws_paused, ws = factory.workspace(), factory.workspace()
    paused_ids = factory.tenants(ws_paused, 2)
    factory.tenants(ws, 1)
    pause(app, "workspace", ws_paused.id, expires_at=utcnow() + timedelta(hours=1))
    _, run_id, _ = start(app, Actor.system(), source="cli")
    drain()
    rows = tenant_rows(app, run_id)
    assert {rows[t] for t in paused_ids} == {("skipped", "paused", None)}
    assert run_row(app, run_id).tenants_skipped == 2


def _runbook_start(app, actor):
    """Preflight → start of the fan-out runbook through runbook_starts (what the page and
    the API do); returns (StartResult, commits the start itself made)."""
    from sqlalchemy import event as sa_event

    from tenantpilot import runbook_starts

    commits = []

    def on_commit(conn):
        commits.append(conn)

    with app.app_context():
        runbook = app.extensions["tenantpilot"].registry.runbooks["tests.fanout"]
        scope = runbook_starts.normalized_scope("all_tenants", None, None)
        event, _ = runbook_starts.record_preflight(runbook, scope, actor)
        sa_event.listen(db.engine, "commit", on_commit)
        try:
            result = runbook_starts.start(runbook, event, actor, "maintenance", "Monthly check", "system_ui")
        finally:
            sa_event.remove(db.engine, "commit", on_commit)
        return result, len(commits)


def test_a_runbook_start_and_its_audit_row_are_one_commit(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 3)
    result, commits = _runbook_start(app, platform_actor(app, factory.platform_user()))
    assert result.status == "started"
    assert commits == 1  # run, tenant rows and the audit row together
    [row] = audit_rows(app, "platform.ops.runbooks.start")
    assert (row.target_type, row.target_id, row.status) == ("operation_run", str(result.run.id), "success")
    assert row.meta["reason_code"] == "maintenance"
    assert queued_jobs(app) == 1


def test_a_runbook_start_the_queue_refused_keeps_its_audit_row_and_audits_the_failure(make_app, factory):
    """The audit row committed with the run; the queue then refused the job: the row stays
    (audit rows are never deleted) and the ledger audits the run's failure."""
    app = make_app(plugins=[fanout_plugin], REDIS_URL="redis://127.0.0.1:1/0")
    f = type(factory)(app)
    f.tenants(f.workspace(), 2)
    result, _ = _runbook_start(app, platform_actor(app, f.platform_user()))
    assert result.status == "enqueue_failed"
    assert [r.target_id for r in audit_rows(app, "platform.ops.runbooks.start")] == [str(result.run.id)]
    [failed] = audit_rows(app, "platform.ops.runbooks.failed")
    assert (failed.target_id, failed.meta["outcome"]) == (str(result.run.id), "failed")

