"""Group executors (execute_tenants): a group of tenants is claimed, run and settled in
one transaction, each tenant with its own result row; a failing tenant fails alone; a
cancel is observed between groups; a batch that died mid-group is re-dispatched, not
failed. SQLite (embedded queue) and PostgreSQL + Redis alike."""
import pytest
from sqlalchemy import event, select

from tenantpilot import jobs, runs, seam
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import AuditLog, Notification
from tenantpilot.queue import get_queue
from tenantpilot.runs import Scope
from tenantpilot.testing import backends
from tests.helpers import count, platform_actor, run_row, tenant_rows
from tests.support import fanout_plugin, group_plugin


@pytest.fixture
def app(make_app):
    return make_app(plugins=[group_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=50, TENANTPILOT_FANOUT_GROUP_SIZE=10)


def named_tenants(factory, names) -> dict[str, int]:
    ws = factory.workspace()
    return {n: factory.tenant(ws, name=n).id for n in names}


def start(app, workspace_id=None, actor=None):
    scope = Scope("workspace", workspace_id=workspace_id) if workspace_id else Scope("all_tenants")
    with app.app_context():
        result = seam.start(group_plugin.KEY, scope=scope, actor=actor or Actor.system(), source="cli")
        assert result.status == "started"
        return result.run.id


def work_rows(app) -> dict[int, list[str]]:
    """Committed executor writes: tenant id -> the paths (group/single) that wrote them."""
    with app.app_context():
        out: dict[int, list[str]] = {}
        for tenant_id, meta in db.session.execute(
                select(AuditLog.tenant_id, AuditLog.meta).where(AuditLog.action == "tests.group.work")):
            out.setdefault(tenant_id, []).append(meta["path"])
        return out


def test_a_failing_tenant_in_a_group_fails_alone_and_the_rest_settle_with_exact_counts(app, factory, drain):
    names = [f"t-{i:02d}" for i in range(30)]
    names[3], names[17] = "fail-a", "boom-b"  # two groups fail; the third is clean
    ids = named_tenants(factory, names)
    run_id = start(app)
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (30, 30, 2)
    assert run.summary_counts == {"processed": 28, "updated": 28, "tenants": 30, "failed": 2}
    rows = tenant_rows(app, run_id)
    assert len(rows) == 30  # one result row per tenant
    assert rows[ids["fail-a"]][:2] == ("failed", "simulated_failure")
    assert rows[ids["boom-b"]][:2] == ("failed", "unexpected_error")
    assert [s for s, _, _ in rows.values()].count("succeeded") == 28
    work = work_rows(app)
    # Each succeeded tenant's work committed exactly once (the failed groups' first
    # attempt rolled back with them); a failed tenant's never.
    assert ids["fail-a"] not in work and ids["boom-b"] not in work
    assert all(len(work[ids[n]]) == 1 for n in names if n not in ("fail-a", "boom-b"))
    # The clean group ran as a group; the two failed groups re-ran tenant by tenant.
    assert sorted(work[ids[n]][0] for n in names[20:]) == ["group"] * 10
    assert {work[ids[n]][0] for n in names[:20] if n not in ("fail-a", "boom-b")} == {"single"}


def test_a_group_costs_a_few_commits_not_one_per_tenant(make_app, factory):
    """The same run with groups of 25 and of 1: commits counted on the app's engine."""
    from tenantpilot.testing import drain_queues

    commits = {}
    for size in (25, 1):
        app = make_app(plugins=[group_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=50, TENANTPILOT_FANOUT_GROUP_SIZE=size)
        f = type(factory)(app)  # both apps share the test database: one workspace each
        ws = f.workspace()
        f.tenants(ws, 100)
        run_id = start(app, ws.id)
        n = [0]
        with app.app_context():
            engine = db.engine
        listener = lambda *a: n.__setitem__(0, n[0] + 1)  # noqa: E731
        event.listen(engine, "commit", listener)
        try:
            drain_queues(app)
        finally:
            event.remove(engine, "commit", listener)
        run = run_row(app, run_id)
        assert (run.outcome, run.tenants_done, run.summary_counts["processed"]) == ("succeeded", 100, 100)
        commits[size] = n[0]
    assert commits[1] >= 100  # one per tenant at least
    # 2 jobs x (start, first claim, 2 groups, accounting) + completion and its effects
    assert commits[25] <= 25, commits


def test_cancel_is_observed_between_groups(app, factory, drain):
    """A cancel landing after the first group's commit: the group claimed in that same
    commit finishes (running tenants finish), every later tenant is cancelled."""
    names = [f"t-{i:03d}" for i in range(100)]
    names[4] = "cancel-here"  # in the first group; cancels after that group's commit
    ids = named_tenants(factory, names)
    run_id = start(app)
    drain()
    run = run_row(app, run_id)
    rows = tenant_rows(app, run_id)
    statuses = [rows[ids[n]][0] for n in names]
    assert (run.status, run.outcome, run.tenants_done) == ("completed", "cancelled", 100)
    assert statuses[:20] == ["succeeded"] * 20  # the first group and the one claimed with its commit
    assert statuses[20:] == ["cancelled"] * 80
    assert run.summary_counts["processed"] == 20 and run.tenants_failed == 0
    assert sorted(work_rows(app)) == sorted(ids[n] for n in names[:20])


def test_after_a_slow_group_the_job_goes_on_one_tenant_at_a_time(app, factory, drain):
    """Big tenants gain nothing from grouping and a claimed group holds up a cancel: once
    a group took over a second, the rest of the batch runs one tenant per group."""
    names = [f"t-{i:02d}" for i in range(40)]
    names[2] = "sleepy"
    ids = named_tenants(factory, names)
    run_id = start(app)
    drain()
    run = run_row(app, run_id)
    assert (run.outcome, run.tenants_done, run.summary_counts["processed"]) == ("succeeded", 40, 40)
    with app.app_context():
        sizes = {t: m["size"] for t, m in db.session.execute(
            select(AuditLog.tenant_id, AuditLog.meta).where(AuditLog.action == "tests.group.work")).all()}
    # The slow group and the one claimed in its commit ran as groups of 10; then groups of 1.
    assert [sizes[ids[n]] for n in names] == [10] * 20 + [1] * 20


def test_a_batch_that_died_mid_group_is_re_dispatched_tenant_by_tenant(app, factory, drain):
    """The worker died while running a group (its transaction rolled back): the failure
    callback cannot tell which tenant killed it, so the group goes back to pending and a
    continuation job runs it one tenant at a time; nothing fails, counts stay exact."""
    ids = list(named_tenants(factory, [f"t-{i:02d}" for i in range(30)]).values())
    run_id = start(app)
    with app.app_context():
        (job_id, tenant_ids), = runs.batches(run_id).items()
        get_queue("runs").remove(job_id)  # the job is gone with its worker
        group = runs.claim_tenants(run_id, tenant_ids[:10])  # what it had claimed when it died
        assert group == tenant_ids[:10]
        jobs.recover_batch(run_id, job_id, tenant_ids, "worker_lost", jobs.WORKER_LOST, 0)
        assert runs.batches(run_id) == {f"{job_id}-c1": tenant_ids}  # all pending, one continuation
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome, run.tenants_done, run.tenants_failed) == ("completed", "succeeded", 30, 0)
    assert run.summary_counts == {"processed": 30, "updated": 30, "tenants": 30, "failed": 0}
    work = work_rows(app)
    assert sorted(work) == sorted(ids) and {len(v) for v in work.values()} == {1}
    assert {work[t][0] for t in ids} == {"single"}  # a continuation never groups


def test_a_batch_that_died_on_one_tenant_still_fails_just_that_tenant(app, factory, drain):
    """Unchanged for a single running tenant (the continuation's own deaths, or an
    operation type without a group executor): it fails as worker_lost, the rest run."""
    ids = list(named_tenants(factory, [f"t-{i:02d}" for i in range(12)]).values())
    run_id = start(app)
    with app.app_context():
        (job_id, tenant_ids), = runs.batches(run_id).items()
        get_queue("runs").remove(job_id)
        assert runs.claim_tenants(run_id, tenant_ids[:1]) == tenant_ids[:1]
        jobs.recover_batch(run_id, job_id, tenant_ids, "worker_lost", jobs.WORKER_LOST, 0)
    drain()
    run = run_row(app, run_id)
    assert (run.status, run.outcome, run.tenants_done, run.tenants_failed) == ("completed", "partially_succeeded",
                                                                                 12, 1)
    assert tenant_rows(app, run_id)[ids[0]][:2] == ("failed", "worker_lost")
    assert sorted(work_rows(app)) == sorted(ids[1:])


def test_the_circuit_breaker_opens_on_a_group_executor_failing_every_tenant(app, factory, drain):
    names = [f"fail-{i:03d}" for i in range(100)]
    named_tenants(factory, names)
    run_id = start(app)
    drain()
    run = run_row(app, run_id)
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert (run.status, run.outcome, run.context.get("circuit_open")) == ("completed", "failed", True)
    assert run.failure_summary[0]["reason_code"] == "circuit_open"
    # Tripped after 20 failures; the group already claimed then still ran (and failed).
    assert 20 <= statuses.count("failed") <= 40 and statuses.count("cancelled") == 100 - statuses.count("failed")
    assert run.tenants_done == 100 and run.tenants_failed == statuses.count("failed")
    assert work_rows(app) == {}


@pytest.mark.multiprocess
@pytest.mark.skipif(backends().redis_url is None, reason="needs a real Redis shared between processes")
def test_two_worker_processes_run_groups_with_exact_counts_and_one_completion(make_app, factory):
    from tests.test_fanout_workers import spawn_worker, wait_all

    app = make_app(plugins=[fanout_plugin, group_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=50,
                   TENANTPILOT_FANOUT_GROUP_SIZE=10, TENANTPILOT_JOB_TIMEOUT=30,
                   TENANTPILOT_WORKER_HEARTBEAT_SECONDS=1)
    f = type(factory)(app)
    names = [f"t-{i:03d}" for i in range(300)]
    names[7], names[151] = "fail-a", "boom-b"
    ids = named_tenants(f, names)
    run_id = start(app, actor=platform_actor(app, f.platform_user()))  # notified on completion
    workers = [spawn_worker(app), spawn_worker(app)]
    wait_all(workers)
    assert [w.returncode for w in workers] == [0, 0], [w.stderr.read()[-2000:] for w in workers]
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (300, 300, 2)
    assert run.summary_counts == {"processed": 298, "updated": 298, "tenants": 300, "failed": 2}
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert statuses.count("succeeded") == 298 and statuses.count("failed") == 2
    work = work_rows(app)
    assert sorted(work) == sorted(t for n, t in ids.items() if n not in ("fail-a", "boom-b"))
    assert {len(v) for v in work.values()} == {1}  # each tenant's work committed once
    assert count(app, Notification, Notification.run_id == run_id,
                 Notification.kind == "operations.run.completed") == 1  # completed exactly once
