"""The app as a Procfile PaaS runs it (issue 17): honcho, the real Procfile runner, starts
the project's own Procfile commands (release first, then 2 web, 3 workers, 2 schedulers),
each process with an instance folder of its own (no shared disk), the web processes behind
one port (a round-robin proxy standing in for the PaaS router). Through it, a 5,000-tenant
canary run; meanwhile one worker and one scheduler are SIGKILLed; a review pack requested on
one web process downloads from the other. Exact counts, and every scheduler slot ran once.

How the Procfile is run, and why:
- The test writes a Procfile derived mechanically from the project's: each command as it is,
  preceded by ``export TENANTPILOT_INSTANCE_PATH=$(mktemp -d …)`` (a fresh, private folder,
  like a dyno's ephemeral filesystem).
- honcho stops *every* process as soon as one exits (honcho.manager.Manager.loop: "If one
  process terminates, all the others will be terminated"), and has no option to keep the
  others. A PaaS instead restarts the dead process (the worker's ``--max-jobs`` relies on
  it). So each long-running line loops: when the command exits (or is killed), the line
  says so and starts it again after a few seconds, with a new instance folder, as the
  platform would. The SIGKILL hits the real worker / scheduler process, never the loop.
- The database is a schema of its own in the test database (``search_path`` in the URL),
  so the release phase migrates an empty database as on a first deploy; Redis keys carry a
  prefix of their own. Both are removed afterwards.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import select
import shlex
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tenantpilot.testing import Factory, backends, cleanup_redis, csrf_from
from tenantpilot.timeutil import utcnow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TENANTS = 5000
FORMATION = {"web": 2, "worker": 3, "scheduler": 2}
RESTART_SECONDS = 3  # how long the "platform" waits before restarting a process that exited
# Base port (the router); the web processes listen on base + 10 and base + 11 (honcho gives
# each process of a type the next port).
BASE_PORT = int(os.environ.get("TENANTPILOT_TEST_PROCFILE_PORT", "5600"))

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(backends().database_url is None or backends().redis_url is None,
                       reason="runs the Procfile's processes against PostgreSQL + Redis (TEST_DATABASE_URL and "
                              "TEST_REDIS_URL); SQLite and the in-process queue cannot be shared between processes"),
]


# --- the Procfile, as honcho runs it -------------------------------------------------------

def derived_procfile(source: Path, instances: Path) -> str:
    """The project's Procfile, each command unchanged, with a private instance folder per
    process start; long-running processes restarted when they exit (see the module doc)."""
    out = []
    for line in source.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if not m:
            continue
        name, command = m.groups()
        fresh = f'export TENANTPILOT_INSTANCE_PATH="$(mktemp -d {shlex.quote(str(instances / name))}.XXXXXX)"'
        if name == "release":
            out.append(f"{name}: {fresh}; {command}")
        else:
            out.append(f"{name}: while :; do {fresh}; {command}; "
                       f'echo "{name} exited with status $?; the platform restarts it"; '
                       f"sleep {RESTART_SECONDS}; done")
    return "\n".join(out) + "\n"


def honcho(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "honcho"), *args], cwd=ROOT, env=env, start_new_session=True, **kwargs)


def processes_of(env_marker: str) -> dict[str, list[dict]]:
    """Our Procfile's real processes (not the looping shells), by honcho process name:
    [{pid, cmdline, instance}], found in /proc by the test's unique queue prefix."""
    found: dict[str, list[dict]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = dict(v.split("=", 1) for v in (entry / "environ").read_bytes().decode(errors="replace")
                           .split("\0") if "=" in v)
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = _stat(entry)
        except (OSError, ValueError):
            continue
        if environ.get("TENANTPILOT_QUEUE_PREFIX") != env_marker or not environ.get("HONCHO_PROCESS_NAME"):
            continue
        program = " ".join(cmdline)
        if not ("flask" in program or "gunicorn" in program) or cmdline[0].endswith("sh"):
            continue
        found.setdefault(environ["HONCHO_PROCESS_NAME"], []).append(
            {"pid": int(entry.name), "cmdline": program, **stat,
             "instance": environ.get("TENANTPILOT_INSTANCE_PATH")})
    return found


def kill_leftovers(env_marker: str) -> list[int]:
    """SIGKILL whatever this test's Procfile started that is still alive (honcho normally
    stops them all); found by the test's unique queue prefix in their environment."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"TENANTPILOT_QUEUE_PREFIX={env_marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except OSError:
            continue
    return killed


def _stat(entry: Path) -> dict:
    """Parent pid and start time (clock ticks since boot) from /proc/<pid>/stat."""
    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    return {"ppid": int(fields[1]), "start": int(fields[19])}


def main_process(procs: list[dict]) -> dict:
    """The process a Procfile line started (gunicorn's master, not its workers); the
    newest if the line has restarted it."""
    pids = {p["pid"] for p in procs}
    tops = [p for p in procs if p["ppid"] not in pids]
    assert tops, procs
    return max(tops, key=lambda p: p["start"])


# --- the PaaS router: one port in front of the web processes -------------------------------

class RoundRobinProxy(socketserver.ThreadingTCPServer):
    """A TCP proxy handing each new connection to the next web process in turn."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, backends_: list[int]):
        self.backends = itertools.cycle(backends_)
        self.connections = Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Pipe)


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self):
        with self.server.lock:
            port = next(self.server.backends)
            self.server.connections[port] += 1
        try:
            upstream = socket.create_connection(("127.0.0.1", port))
        except OSError:
            return  # the client sees the connection close, as behind a router with a dead backend
        try:
            sockets = [self.request, upstream]
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.request else self.request).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


# --- helpers ------------------------------------------------------------------------------

def wait_for(predicate, timeout: float, what: str, log: Path | None = None, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(every)


def http(base: str):
    import httpx

    # Connection: close, so every request is a new connection (the router alternates).
    return httpx.Client(base_url=base, timeout=30, headers={"Connection": "close"})


def healthy(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def honcho_lines(log: Path, process: str) -> list[str]:
    """What one process printed, without honcho's '<time> <name> | ' prefix."""
    rx = re.compile(rf"^\S+ {re.escape(process)}\s+\| (.*)$")
    return [m.group(1) for m in map(rx.match, log.read_text(errors="replace").splitlines()) if m]


def json_lines(lines: list[str]) -> list[dict]:
    out = []
    for line in lines:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


# --- the world -----------------------------------------------------------------------------

@pytest.fixture
def deployment(tmp_path):
    """An empty schema of its own, a Redis prefix of its own, the environment every
    process of the Procfile gets, and an app of the test on the same backends (to seed the
    data and read what the processes recorded)."""
    import psycopg

    from tenantpilot.app import create_app

    pg = backends().database_url
    schema = f"tp_procfile_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{pg}?options=-csearch_path%3D{schema}"
    prefix = f"tpprocfile-{uuid.uuid4().hex[:8]}"
    instances = tmp_path / "instances"
    instances.mkdir()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "DATABASE_URL": url, "REDIS_URL": backends().redis_url, "SECRET_KEY": f"procfile-{uuid.uuid4().hex}",
           "TENANTPILOT_QUEUE_PREFIX": prefix, "PYTHONUNBUFFERED": "1",
           # A killed worker's job is found abandoned after 3 missed beats (6 s) by the
           # scheduler's reaper (every 15 s); unsettled tenants whose job vanished, after 20 s.
           "TENANTPILOT_WORKER_HEARTBEAT_SECONDS": "2", "TENANTPILOT_ORPHAN_MIN_AGE": "20"}
    for k in ("TENANTPILOT_INSTANCE_PATH", "PORT", "WEB_CONCURRENCY", "FLASK_APP"):
        env.pop(k, None)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg://", 1),
                      "REDIS_URL": backends().redis_url, "TENANTPILOT_QUEUE_PREFIX": prefix,
                      "SECRET_KEY": env["SECRET_KEY"], "INSTANCE_PATH": str(tmp_path / "test-instance"),
                      "TENANTPILOT_EMBEDDED_WORKER": False, "RATELIMIT_STORAGE_URI": backends().redis_url,
                      "RATELIMIT_KEY_PREFIX": f"{prefix}-limiter"})
    try:
        yield {"env": env, "app": app, "instances": instances, "prefix": prefix, "tmp": tmp_path}
    finally:
        from tenantpilot.extensions import db

        cleanup_redis(app)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def seed(app) -> dict:
    """5,000 tenants in four workspaces, an operator with a platform token, a tenant owner
    (of the first workspace) with a tenant-plane token."""
    from sqlalchemy import insert, select

    from tenantpilot import tokens
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.models import PlatformUser, Tenant, User

    f = Factory(app)
    workspaces = [f.workspace(f"Fleet {i}") for i in range(4)]
    with app.app_context():
        db.session.execute(insert(Tenant), [
            {"workspace_id": workspaces[i % 4].id, "name": f"Tenant {i:04d}", "external_id": str(uuid.uuid4()),
             "status": "active", "is_platform": False} for i in range(TENANTS)])
        db.session.commit()
        first = db.session.scalar(select(Tenant).where(Tenant.workspace_id == workspaces[0].id).order_by(Tenant.id))
        db.session.expunge(first)
    operator = f.platform_user("ops@procfile.test")
    owner = f.user("owner@procfile.test", memberships=[(workspaces[0], "owner")])
    with app.app_context():
        op = db.session.get(PlatformUser, operator.id)
        _, system_token = tokens.create("system", op, "procfile test", sorted(tokens.held_capabilities("system", op)),
                                        1, Actor.system())
        person = db.session.get(User, owner.id)
        _, admin_token = tokens.create("admin", person, "procfile test", sorted(tokens.held_capabilities("admin", person)),
                                       1, Actor.system())
    return {"tenant": first, "system_token": system_token, "admin_token": admin_token,
            "owner": ("owner@procfile.test", "user-pass-123")}


# --- the test ------------------------------------------------------------------------------

def test_the_procfile_under_honcho_survives_sigkills_with_exact_counts_and_no_shared_disk(deployment):
    from sqlalchemy import func, select

    from tenantpilot.extensions import db
    from tenantpilot.models import Notification, OperationRun, OperationRunTenant
    from tenantpilot.queue import get_queue

    env, app, tmp = deployment["env"], deployment["app"], deployment["tmp"]
    web_ports = [BASE_PORT + 10 + i for i in range(FORMATION["web"])]
    for port in [BASE_PORT, *web_ports]:
        assert port_free(port), f"port {port} is taken (set TENANTPILOT_TEST_PROCFILE_PORT to another base)"
    procfile = tmp / "Procfile"
    procfile.write_text(derived_procfile(ROOT / "Procfile", deployment["instances"]))
    project = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    assert {"release", *FORMATION} <= set(project)
    assert all(command.strip() in procfile.read_text() for command in project.values())  # the commands, as they are
    began = time.monotonic()

    # 1. The release phase, as the platform runs it before the new processes start.
    release_log = tmp / "release.log"
    with release_log.open("w") as out:
        release = honcho(["start", "--no-colour", "-f", str(procfile), "release"], env, stdout=out,
                         stderr=subprocess.STDOUT)
        assert release.wait(timeout=120) == 0, release_log.read_text()
    released = "\n".join(honcho_lines(release_log, "release.1"))
    assert "Findings lifecycle backfill: preflight found nothing to do." in released, released
    world = seed(app)
    tenant = world["tenant"]

    # 2. The formation: 2 web, 3 workers, 2 schedulers.
    log = tmp / "honcho.log"
    formation = ",".join(f"{k}={v}" for k, v in FORMATION.items())
    proxy = RoundRobinProxy(BASE_PORT, web_ports)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    out = log.open("w")
    manager = honcho(["start", "--no-colour", "-f", str(procfile), "-p", str(web_ports[0]), "-c", formation,
                      *FORMATION], env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: all(map(healthy, web_ports)), 90, "both web processes to answer /healthz", log)
        names = [f"{kind}.{i + 1}" for kind, n in FORMATION.items() for i in range(n)]

        def formation_up():
            found = processes_of(deployment["prefix"])
            return found if all(found.get(name) for name in names) else None

        procs = wait_for(formation_up, 60, "every process of the formation", log)

        # Each process has its own instance folder, made for it alone.
        tops = {name: main_process(p) for name, p in procs.items()}
        folders = {name: p["instance"] for name, p in tops.items()}
        assert len(tops) == sum(FORMATION.values()), procs
        assert len(set(folders.values())) == len(folders), folders
        assert all(Path(f).parent == deployment["instances"] and Path(f).is_dir() for f in folders.values())

        # 3. Through the one port: preflight and start the canary for all 5,000 tenants.
        router = http(f"http://127.0.0.1:{BASE_PORT}")
        router.headers["Authorization"] = f"Bearer {world['system_token']}"
        key = "ops.pipeline_canary"
        pre = router.post(f"/system/api/v1/runbooks/{key}/preflight", json={"scope": {"kind": "all_tenants"}})
        assert pre.status_code == 201, pre.text
        assert pre.json()["result"]["affected_count"] == TENANTS
        started = router.post(f"/system/api/v1/runbooks/{key}/start", json={
            "preflight_id": pre.json()["preflight_id"], "confirmation": "CANARY", "reason_code": "SUPPORT",
            "reason_text": "Procfile scale-out test: canary across the fleet"})
        assert started.status_code == 201, started.text
        start_clock = time.monotonic()
        assert started.json()["status"] == "started"
        run_id = started.json()["run"]["id"]

        def run_api():
            resp = router.get(f"/system/api/v1/runs/{run_id}")
            assert resp.status_code == 200, resp.text
            return resp.json()

        # 4. A review pack requested on web process 1 (its generation queues behind the canary).
        web1 = http(f"http://127.0.0.1:{web_ports[0]}")
        web1.headers["Authorization"] = f"Bearer {world['admin_token']}"
        asked = web1.post(f"/admin/api/v1/tenants/{tenant.id}/review-packs",
                          json={"include_operations": True, "include_pii": False})
        assert asked.status_code == 201, asked.text
        pack_id = asked.json()["pack"]["id"]

        # 5. Mid-run: SIGKILL a worker holding a batch, and a scheduler.
        wait_for(lambda: run_api()["tenants_done"] >= 300, 90, "the canary to get going", log)
        queue = get_queue("runs", app)

        def unsettled(job_id: str) -> Counter:
            with app.app_context():
                found = Counter(dict(db.session.execute(
                    select(OperationRunTenant.status, func.count()).where(
                        OperationRunTenant.run_id == run_id, OperationRunTenant.job_id == job_id,
                        OperationRunTenant.status.in_(("pending", "running")))
                    .group_by(OperationRunTenant.status)).all()))
                db.session.remove()
            return found

        def kill_a_busy_worker():
            """SIGKILL one of our workers in the middle of a batch (a tenant running, at least
            25 still pending: a batch runs in a few hundred ms, so the kill lands before it
            ends), so the kill strands work the reaper must recover. (name, pid, job id)."""
            from rq import Worker

            ours = {p["pid"]: name for name, ps in processes_of(deployment["prefix"]).items()
                    if name.startswith("worker.") for p in ps}
            for w in Worker.all(queue=queue):
                job_id = w.get_current_job_id()
                if job_id and w.pid in ours:
                    left = unsettled(job_id)
                    if left["running"] == 1 and left["pending"] >= 25:
                        os.kill(w.pid, signal.SIGKILL)
                        return ours[w.pid], w.pid, job_id
            return None

        victim, victim_pid, victim_job = wait_for(kill_a_busy_worker, 30, "a worker in the middle of a batch",
                                                  every=0.02)
        killed_at, kill_clock = utcnow(), time.monotonic()
        scheduler_pid = main_process(processes_of(deployment["prefix"])["scheduler.1"])["pid"]
        os.kill(scheduler_pid, signal.SIGKILL)
        done_at_kill = run_api()["tenants_done"]
        assert done_at_kill < TENANTS, "the canary finished before the kill: nothing was tested"
        time.sleep(1)  # the killed worker's last commit has landed, or never will
        # What the dead worker left: the tenant it was running (only the reaper will settle
        # it) and the rest of its batch (pending; to be re-dispatched).
        stranded = unsettled(victim_job)
        assert stranded["running"] == 1 and stranded["pending"] >= 1, stranded
        with app.app_context():
            lost_tenant = db.session.scalar(select(OperationRunTenant.tenant_id).where(
                OperationRunTenant.run_id == run_id, OperationRunTenant.job_id == victim_job,
                OperationRunTenant.status == "running"))
            db.session.remove()

        # 6. The run completes: the dead worker's batch recovered by the surviving scheduler's
        # reaper, its pending tenants re-dispatched, exact counts.
        seen = {}

        def completed_run():
            r = run_api()
            if r["tenants_failed"] and "recovered" not in seen:
                seen["recovered"] = time.monotonic() - kill_clock
            return r if r["status"] == "completed" else None

        run = wait_for(completed_run, 120, "the canary run to complete", log, every=0.5)
        run_seconds = time.monotonic() - start_clock
        assert (run["tenants_total"], run["tenants_done"]) == (TENANTS, TENANTS), run
        assert (run["tenants_failed"], run["outcome"]) == (1, "partially_succeeded"), run
        with app.app_context():
            rows = Counter(db.session.execute(
                select(OperationRunTenant.status, OperationRunTenant.reason_code)
                .where(OperationRunTenant.run_id == run_id)).all())
            distinct = db.session.scalar(select(func.count(func.distinct(OperationRunTenant.tenant_id)))
                                         .where(OperationRunTenant.run_id == run_id))
            failed_tenants = list(db.session.scalars(select(OperationRunTenant.tenant_id).where(
                OperationRunTenant.run_id == run_id, OperationRunTenant.status == "failed")))
            row = db.session.get(OperationRun, run_id)
            completed = db.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.run_id == run_id, Notification.kind == "operations.run.completed"))
            summary = dict(row.summary_counts or {})
            db.session.remove()
        assert sum(rows.values()) == distinct == TENANTS  # one result row per tenant, none twice
        # The tenant the dead worker was running failed (worker_lost); the rest of its batch ran
        # on the surviving workers.
        assert rows == Counter({("succeeded", None): TENANTS - 1, ("failed", "worker_lost"): 1}), rows
        assert failed_tenants == [lost_tenant]
        assert summary["processed"] == TENANTS - 1 and summary["tenants"] == TENANTS, summary
        assert completed == 1  # completed exactly once

        # 7. The pack, built by a worker in its own folder, downloads from web process 2.
        pack = wait_for(lambda: (lambda p: p if p["status"] != "queued" else None)(
            web1.get(f"/admin/api/v1/tenants/{tenant.id}/review-packs/{pack_id}").json()), 90,
            "the review pack to be generated", log, every=0.5)
        assert pack["status"] == "ready", pack
        web2 = http(f"http://127.0.0.1:{web_ports[1]}")
        page = web2.get("/admin/login")
        email, password = world["owner"]
        signed = web2.post("/admin/login", data={"email": email, "password": password,
                                                 "csrf_token": csrf_from(page.text)})
        assert signed.status_code == 302, signed.text
        download = web2.get(pack["download_url"])

        # The router spread the requests over both web processes.
        assert len(proxy.connections) == 2 and min(proxy.connections.values()) >= 5, proxy.connections

        # The killed processes were restarted by the "platform", each with a new folder.
        again = processes_of(deployment["prefix"])
        for name, pid in ((victim, victim_pid), ("scheduler.1", scheduler_pid)):
            assert f"{name.split('.')[0]} exited with status 137" in "\n".join(honcho_lines(log, name))  # 128 + SIGKILL
            assert main_process(again[name])["pid"] != pid
            assert main_process(again[name])["instance"] not in folders.values()
        stopped_at = utcnow()
    finally:
        proxy.shutdown()
        proxy.server_close()
        os.kill(manager.pid, signal.SIGTERM)  # honcho stops every process (SIGTERM, then SIGKILL)
        try:
            manager.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(manager.pid, signal.SIGKILL)
        leftovers = kill_leftovers(deployment["prefix"])
        out.close()
    assert leftovers == [], "processes outlived honcho's shutdown"

    # 8. Every scheduler slot ran once: no (job, slot) in both schedulers, slots of a job at
    # least its interval apart (a slot is claimed by one conditional UPDATE), and the
    # surviving scheduler kept them coming after the kill (its reaper recovered the batch).
    jobs = app.extensions["tenantpilot"].registry.scheduled_jobs
    ran = [(name, rec["job"], datetime.fromisoformat(rec["slot"]))
           for name in [f"scheduler.{i + 1}" for i in range(FORMATION["scheduler"])]
           for rec in json_lines(honcho_lines(log, name)) if rec.get("msg") == "scheduled job ran"]
    assert ran, "no scheduler slot in the log"
    twice = [k for k, n in Counter((job, slot) for _, job, slot in ran).items() if n > 1]
    assert twice == []
    for job, interval in ((j.name, j.interval_seconds) for j in jobs.values()):
        slots = sorted(slot for _, name, slot in ran if name == job)
        assert slots, f"{job} never ran"
        gaps = [b - a for a, b in zip(slots, slots[1:])]
        assert all(g >= timedelta(seconds=interval) for g in gaps), (job, gaps)
    after = [(proc, job) for proc, job, slot in ran if slot > killed_at]
    assert ("ops.reap_abandoned_jobs" in {job for _, job in after}), after
    reaps = sorted(slot for _, job, slot in ran if job == "ops.reap_abandoned_jobs")
    assert reaps[-1] > stopped_at - timedelta(seconds=30)

    print(f"\nProcfile scale-out: {TENANTS} tenants, the SIGKILLed {victim} left {dict(stranded)} "
          f"(killed at {done_at_kill} done; its running tenant settled as worker_lost "
          f"{seen.get('recovered', float('nan')):.0f} s after the kill; the run took {run_seconds:.0f} s), router connections {dict(proxy.connections)}, "
          f"{len(ran)} scheduler slots ({Counter(p for p, _, _ in ran)}), {time.monotonic() - began:.0f} s in all")

    # 9. The pack was built by a worker (its own instance folder) and web process 2, which
    # shares no disk with it, served it: a valid zip, the checksum the API announced.
    on_disk = sorted(str(f.relative_to(deployment["instances"])) for f in deployment["instances"].rglob("*.zip"))
    assert download.status_code == 200, (f"web.2 answered {download.status_code} for the pack; pack files on "
                                         f"the processes' own disks: {on_disk}")
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.testzip() is None and archive.namelist()
    assert hashlib.sha256(download.content).hexdigest() == pack["sha256"]
    served = "\n".join(honcho_lines(log, "web.2"))
    assert f"/admin/t/{tenant.id}/review-packs/{pack_id}/download" in served  # web.2's access log
    assert f"/review-packs/{pack_id}/download" not in "\n".join(honcho_lines(log, "web.1"))
