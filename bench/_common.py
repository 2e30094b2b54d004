"""Shared setup for the benchmark scripts in bench/ (not a benchmark itself).

Backends: PostgreSQL database ``tenantpilot_bench`` (its public schema is dropped and
rebuilt on every run) and Redis db 14; override with BENCH_DATABASE_URL / BENCH_REDIS_URL.
Every app gets a random ``tpbench-…`` queue/key prefix and only keys carrying it are
deleted at the end (tenantpilot.testing.cleanup_redis).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/tenantpilot_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
OPERATION = "ops.pipeline_canary"  # the canary plugin's no-op runbook (entry point)
WORKER_SCRIPT = Path(__file__).resolve().parent / "_worker.py"


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _safe(url: str) -> str:
    import re

    return re.sub(r"//[^@/]*@", "//", url)


def print_header(title: str, purpose: str) -> None:
    import redis
    import rq

    print(f"# {title}")
    print(f"# {purpose}")
    print(f"# machine: {os.cpu_count()} cores (a 2-core box); figures are noisy (±10-20% run to run);")
    print("#          PostgreSQL and Redis on loopback, sharing those cores with the workers.")
    print(f"# python {platform.python_version()}, rq {rq.__version__}, redis-py {redis.__version__}")
    print(f"# database {_safe(DATABASE_URL)}, redis {REDIS_URL}")
    print()


# --- backends -------------------------------------------------------------------------

def ensure_database(url: str = DATABASE_URL) -> None:
    """Create the benchmark database if it is missing (autocommit on the postgres db)."""
    import psycopg

    libpq = _libpq_url(url)
    dbname = libpq.rsplit("/", 1)[1].split("?")[0]
    admin = libpq.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')


def reset_schema(url: str = DATABASE_URL) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def bench_config(**extra) -> dict:
    """A JSON-serialisable app config; worker processes rebuild the app from it."""
    prefix = f"tpbench-{uuid.uuid4().hex[:8]}"
    config = {
        "SQLALCHEMY_DATABASE_URI": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "TENANTPILOT_QUEUE_PREFIX": prefix,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": f"{prefix}-limiter",
        "TENANTPILOT_EMBEDDED_WORKER": False,
        "SECRET_KEY": "bench",
        "INSTANCE_PATH": tempfile.mkdtemp(prefix="tpbench-instance-"),
        "LOG_LEVEL": "WARNING",
    }
    config.update(extra)
    return config


def build_app(config: dict):
    from tenantpilot.app import create_app

    return create_app(dict(config), plugins=None)  # None: entry points → canary runbook


def migrate(app) -> None:
    from flask_migrate import upgrade

    from tenantpilot.extensions import db

    with app.app_context():
        upgrade(revision="heads")
        db.session.remove()


def seed_tenants(app, count: int) -> list[int]:
    """One workspace and ``count`` active tenants, bulk-inserted; returns tenant ids."""
    from sqlalchemy import insert, select

    from tenantpilot.extensions import db
    from tenantpilot.models import Tenant, Workspace

    with app.app_context():
        ws_id = db.session.execute(
            insert(Workspace).values(name="Bench workspace", slug=f"bench-{uuid.uuid4().hex[:6]}")
            .returning(Workspace.id)).scalar_one()
        db.session.execute(insert(Tenant), [
            {"workspace_id": ws_id, "name": f"Bench tenant {i}", "external_id": str(uuid.uuid4()),
             "status": "active", "is_platform": False} for i in range(count)])
        db.session.commit()
        return list(db.session.scalars(select(Tenant.id).where(Tenant.workspace_id == ws_id).order_by(Tenant.id)))


def fresh_app(**extra_config):
    """Fresh schema + migrated app. Returns (app, config)."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    ensure_database()
    reset_schema()
    config = bench_config(**extra_config)
    app = build_app(config)
    migrate(app)
    return app, config


def setup(tenants: int, **extra_config):
    """Fresh schema + migrated app + seeded tenants. Returns (app, config, tenant_ids)."""
    app, config = fresh_app(**extra_config)
    return app, config, seed_tenants(app, tenants)


def teardown(app) -> None:
    from tenantpilot.extensions import db
    from tenantpilot.testing import cleanup_redis

    cleanup_redis(app)
    # cleanup_redis leaves this app's queue names in RQ's global "rq:queues" set (the key
    # itself carries no prefix); remove just those members.
    prefix = app.config["TENANTPILOT_QUEUE_PREFIX"]
    r = app.extensions["tenantpilot"].redis
    for member in r.smembers("rq:queues"):
        if prefix in (member.decode() if isinstance(member, bytes) else member):
            r.srem("rq:queues", member)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --- statistics -----------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    import math

    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


# --- worker processes -----------------------------------------------------------------

class WorkerPool:
    """N worker processes (bench/_worker.py) that build their app/connection, report
    ready, then block until release(): start-up cost stays out of the timed window."""

    def __init__(self, count: int, mode: str, config: dict, queue: str | None = None):
        env = dict(os.environ, BENCH_WORKER_CONFIG=json.dumps(config), BENCH_WORKER_QUEUE=queue or "")
        self.procs = [
            subprocess.Popen([sys.executable, str(WORKER_SCRIPT), mode], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(count)
        ]
        for proc in self.procs:
            line = proc.stdout.readline().strip()
            if line != "ready":
                self.kill()
                raise RuntimeError(f"worker process {proc.pid} did not start (said {line!r}); see stderr above")

    def release(self) -> None:
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.close()

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(f"worker process {proc.pid} exited with {proc.returncode}")

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    pass  # a helper module: `make bench` runs every bench/*.py, this one has nothing to do


def checks_verdict(checks_ok: bool, began: float) -> int:
    """The last line of a bench script; its exit code (1 when a check failed)."""
    print(f"checks: {'OK' if checks_ok else 'FAILED'}; total time {time.monotonic() - began:.0f} s")
    return 0 if checks_ok else 1


def named_checks_verdict(checks: list[tuple[str, bool]], began: float) -> int:
    """``checks_verdict`` for (name, ok) checks: names the failed ones first."""
    failed = [name for name, ok in checks if not ok]
    print(f"checks failed: {', '.join(failed)}" if failed else f"all {len(checks)} checks passed")
    return checks_verdict(not failed, began)


def wait_until(done, t0: float, timeout: float, poll: float, what: str) -> None:
    """Poll ``done()`` until true; fail after ``timeout`` seconds counted from ``t0``."""
    while not done():
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"not {what} after {timeout}s")
        time.sleep(poll)


def run_to_completion(app, config, workers: int, poller, operation: str, scope: dict,
                      timeout: float = 120, poll: float = 0.01) -> tuple[int, float, float]:
    """Start one run through the seam with `workers` worker processes already connected,
    and wait (polling the database) until it is completed. Returns (run id, seconds spent
    in start(), wall seconds from start() to completion)."""
    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.runs import Scope

    pool = WorkerPool(workers, "app", config)
    try:
        with app.app_context():
            t0 = time.perf_counter()
            res = seam.start(operation, scope=Scope(**scope), actor=Actor.system("Bench"), source="cli")
            t_start = time.perf_counter() - t0
            if res.status != "started":
                raise RuntimeError(f"start returned {res.status}: {res.message}")
            run_id = res.run.id
        pool.release()
        wait_until(lambda: poller.execute("SELECT status FROM operation_runs WHERE id = %s",
                                          (run_id,)).fetchone()[0] == "completed",
                   t0, timeout, poll, f"run {run_id} completed")
        wall = time.perf_counter() - t0
        pool.wait()
    finally:
        pool.kill()
    return run_id, t_start, wall
