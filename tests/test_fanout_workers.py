"""Fan-out with real RQ worker processes on real Redis: exact counts, exactly-once
completion, failure isolation, and a worker SIGKILLed mid-job."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tenantpilot import seam
from tenantpilot.actors import Actor
from tenantpilot.jobs import reap_abandoned_jobs
from tenantpilot.models import Notification
from tenantpilot.runs import Scope
from tenantpilot.testing import backends
from tests.helpers import count, platform_actor, run_row, tenant_rows
from tests.support import fanout_plugin

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(backends().redis_url is None, reason="needs a real Redis shared between processes"),
]


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(plugins=[fanout_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=10,
                    TENANTPILOT_JOB_TIMEOUT=8, TENANTPILOT_WORKER_HEARTBEAT_SECONDS=1)


def spawn_worker(app, env_extra=None, burst=True):
    keys = ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "TENANTPILOT_QUEUE_PREFIX", "INSTANCE_PATH",
            "RATELIMIT_STORAGE_URI", "RATELIMIT_KEY_PREFIX", "TENANTPILOT_FANOUT_BATCH_SIZE",
            "TENANTPILOT_JOB_TIMEOUT", "TENANTPILOT_WORKER_HEARTBEAT_SECONDS")
    config = {k: app.config[k] for k in keys}
    config["LOG_LEVEL"] = "WARNING"
    env = {**os.environ, "TP_TEST_CONFIG": json.dumps(config), "PYTHONPATH": str(ROOT), **(env_extra or {})}
    args = [sys.executable, "-m", "tests.support.worker_proc"] + (["--burst"] if burst else [])
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_all(procs, timeout=120):
    for p in procs:
        p.wait(timeout=timeout)


def test_300_tenants_two_worker_processes_exact_counts_and_one_completion(app, factory):
    ws = factory.workspace()
    factory.tenants(ws, 298)
    factory.tenant(ws, name="fail-a")
    factory.tenant(ws, name="boom-b")
    with app.app_context():
        result = seam.start("tests.fanout", scope=Scope("all_tenants"),
                            actor=platform_actor(app, factory.platform_user()), source="api")
    assert result.status == "started"
    run_id = result.run.id
    workers = [spawn_worker(app), spawn_worker(app)]
    wait_all(workers)
    assert [w.returncode for w in workers] == [0, 0], [w.stderr.read()[-2000:] for w in workers]
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (300, 300, 2)
    assert run.summary_counts == {"processed": 298, "updated": 298, "tenants": 300, "failed": 2}
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert statuses.count("succeeded") == 298 and statuses.count("failed") == 2
    assert count(app, Notification, Notification.run_id == run_id, Notification.kind == "operations.run.completed") == 1  # completed exactly once


def start_and_kill_the_slow_worker(app, tmp_path, slow_seconds: int):
    """Start an all-tenants run with two worker processes; SIGKILL the one running the
    slow tenant, let the other finish. Returns (run id, time of the kill)."""
    pid_file = tmp_path / "slow.pid"
    with app.app_context():
        run_id = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    env = {"FANOUT_PID_FILE": str(pid_file), "FANOUT_SLOW_SECONDS": str(slow_seconds)}
    victim, survivor = spawn_worker(app, env), spawn_worker(app, env)
    wait_for(pid_file.exists, timeout=60)
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    killed, other = (victim, survivor) if victim.pid == pid else (survivor, victim)
    killed.wait(timeout=10)
    other.wait(timeout=180)
    return run_id, killed_at


def test_worker_killed_mid_job_fails_that_tenant_and_the_run_still_completes(app, factory, drain, tmp_path):
    ws = factory.workspace()
    factory.tenants(ws, 35)
    slow = factory.tenant(ws, name="slow-tenant")
    factory.tenants(factory.workspace(), 14)
    run_id, _ = start_and_kill_the_slow_worker(app, tmp_path, slow_seconds=120)
    assert run_row(app, run_id).status == "running"  # the dead batch is still unaccounted
    # RQ declares the job abandoned once its registry entry expires (timeout + grace).
    deadline = time.time() + 40
    while run_row(app, run_id).tenants_failed == 0 and time.time() < deadline:
        with app.app_context():
            reap_abandoned_jobs()
        time.sleep(0.5)
    drain()  # the re-dispatched rest of the killed batch
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (50, 50, 1)
    assert run.summary_counts["processed"] == 49
    assert tenant_rows(app, run_id)[slow.id][:2] == ("failed", "worker_lost")
    assert run.failure_summary == [{"reason_code": "worker_lost", "tenant_id": slow.id,
                                    "message": "The worker running this tenant stopped unexpectedly."}]


def named_tenants(factory, ws, names):
    from sqlalchemy import insert

    from tenantpilot.extensions import db
    from tenantpilot.models import Tenant
    import uuid

    with factory.app.app_context():
        db.session.execute(insert(Tenant), [{"workspace_id": ws.id, "name": n, "external_id": str(uuid.uuid4()),
                                             "status": "active", "is_platform": False} for n in names])
        db.session.commit()


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_cancel_mid_run_then_retry_only_the_failed_tenants_with_two_workers(app, factory, tmp_path):
    from tenantpilot import runs

    ws = factory.workspace()
    # Three failing tenants first, then 297 that take 20 ms each, so cancel lands mid-run.
    named_tenants(factory, ws, [f"fail-{i}" for i in range(3)] + [f"slow-{i:03d}" for i in range(297)])
    env = {"FANOUT_PID_FILE": str(tmp_path / "pid"), "FANOUT_SLOW_SECONDS": "0.02"}
    with app.app_context():
        run_id = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    workers = [spawn_worker(app, env), spawn_worker(app, env)]
    wait_for(lambda: run_row(app, run_id).tenants_done >= 40)
    with app.app_context():
        assert runs.cancel(run_id) is True
    wait_all(workers)
    run = run_row(app, run_id)
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert (run.status, run.outcome, run.tenants_done) == ("completed", "cancelled", 300)
    assert statuses.count("cancelled") > 100  # pending tenants never ran
    assert statuses.count("succeeded") + statuses.count("failed") + statuses.count("cancelled") == 300
    assert run.tenants_failed == statuses.count("failed") == 3
    assert run.summary_counts["processed"] == statuses.count("succeeded")

    failed = sorted(t for t, (s, _, _) in tenant_rows(app, run_id).items() if s == "failed")
    with app.app_context():
        retry = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=Actor.system(), source="cli",
                           tenant_ids=failed, parent_run_id=run_id)
    assert retry.status == "started"
    workers = [spawn_worker(app, env), spawn_worker(app, env)]
    wait_all(workers)
    again = run_row(app, retry.run.id)
    assert sorted(tenant_rows(app, retry.run.id)) == failed  # only the failed ones
    assert (again.parent_run_id, again.tenants_total, again.tenants_done, again.outcome) == (run_id, 3, 3, "failed")


def test_circuit_breaker_opens_with_two_workers_on_a_runbook_failing_every_tenant(app, factory):
    ws = factory.workspace()
    named_tenants(factory, ws, [f"fail-{i:03d}" for i in range(300)])
    with app.app_context():
        run_id = seam.start("tests.fanout", scope=Scope("all_tenants"), actor=Actor.system(), source="cli").run.id
    workers = [spawn_worker(app), spawn_worker(app)]
    wait_all(workers)
    run = run_row(app, run_id)
    statuses = [s for s, _, _ in tenant_rows(app, run_id).values()]
    assert (run.status, run.outcome, run.context.get("circuit_open")) == ("completed", "failed", True)
    assert run.failure_summary[0]["reason_code"] == "circuit_open"
    assert 20 <= statuses.count("failed") < 100 and statuses.count("cancelled") == 300 - statuses.count("failed")
    assert run.tenants_done == 300


def test_sigkill_of_a_worker_is_recovered_within_a_minute_by_heartbeat(make_app, factory, drain, tmp_path):
    """≥ 200 tenants, production heartbeat (10 s) and job timeout (600 s): the killed
    batch's tenants are re-dispatched within 60 s, not after the job timeout, and the run
    completes with exact counts."""
    app = make_app(plugins=[fanout_plugin], TENANTPILOT_FANOUT_BATCH_SIZE=20, TENANTPILOT_JOB_TIMEOUT=600,
                   TENANTPILOT_WORKER_HEARTBEAT_SECONDS=10)
    f = type(factory)(app)
    ws = f.workspace()
    f.tenants(ws, 230)
    slow = f.tenant(ws, name="slow-tenant")
    f.tenants(f.workspace(), 30)
    run_id, killed_at = start_and_kill_the_slow_worker(app, tmp_path, slow_seconds=900)
    # The scheduler's reaper, as often as it runs (every 15 s); here every second.
    while run_row(app, run_id).tenants_failed == 0:
        assert time.time() - killed_at < 60, "the dead worker's batch was not recovered within 60 s"
        with app.app_context():
            reap_abandoned_jobs()
        time.sleep(1)
    recovered_after = time.time() - killed_at
    drain(app)  # the re-dispatched rest of the killed batch
    run = run_row(app, run_id)
    assert (run.status, run.outcome) == ("completed", "partially_succeeded")
    assert (run.tenants_total, run.tenants_done, run.tenants_failed) == (261, 261, 1)
    assert run.summary_counts["processed"] == 260
    assert tenant_rows(app, run_id)[slow.id][:2] == ("failed", "worker_lost")
    print(f"\nSIGKILL recovery: the killed batch was re-dispatched {recovered_after:.1f} s after the kill")
