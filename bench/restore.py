"""Restore of a 500-item backup set with the simulated provider (the restore plugin).

One tenant whose simulated state holds 500 policies (3 policy types; ``--items``). Measured,
each with one worker PROCESS running the real AppWorker (bench/_worker.py), timed from the
call to the start seam until the operation run reads 'completed' (polled in the database):

- capture: "Capture backup" snapshots the 500 policies into a backup set;
- preview: the wizard's preview step (500 provider reads + a setting-level diff each),
  in this process, as the page computes it;
- execute, all 500 drifted: Execute restore applies every item (get + diff + apply +
  per-item result, one commit per item so progress is visible);
- execute again, nothing to do: every item reports 'unchanged'.
Checks: the simulated state equals the backup payloads afterwards, counts are exact.

The four steps are repeated REPS times (``--reps``, default 3), each repetition with a
backup set of its own; a repetition needs drifted state, so before its preview the
script drifts every policy again (one UPDATE, not timed). The table prints every figure
as the median over the repetitions and its spread (min–max); the checks hold for every
repetition.

Backends: PostgreSQL database ``tenantpilot_bench_restore`` (created if missing; public
schema rebuilt) and Redis db 14; override with BENCH_RESTORE_DATABASE_URL /
BENCH_REDIS_URL. Run from the repository root with the venv active:
    python bench/restore.py [--reps 3] [--items 500]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ["BENCH_DATABASE_URL"] = os.environ.get(
    "BENCH_RESTORE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tenantpilot_bench_restore")

import psycopg  # noqa: E402

from _common import (DATABASE_URL, WorkerPool, _libpq_url, checks_verdict, print_header, setup,  # noqa: E402
                     teardown, wait_until)

ITEMS = 500
TIMEOUT = 300
TYPES = ("device_configuration", "compliance_policy", "conditional_access")


def seed_state(app, tenant_id: int) -> None:
    """A tenant connected to the simulated provider with ITEMS policies of every type."""
    from sqlalchemy import insert

    from tenantpilot.extensions import db
    from tenantpilot.models import Membership, ProviderConnection, Tenant, User
    from tenantpilot_simulated.models import SimPolicy, SimTenant

    with app.app_context():
        db.session.add(ProviderConnection(tenant_id=tenant_id, provider="simulated", settings={}))
        db.session.add(SimTenant(tenant_id=tenant_id, permissions=["Policy.Read.All"], role_assignments=[]))
        db.session.flush()
        db.session.execute(insert(SimPolicy), [
            {"tenant_id": tenant_id, "policy_type": TYPES[i % 3], "policy_id": f"bench-{i:04d}",
             "name": f"Bench policy {i:04d}",
             "payload": {"displayName": f"Bench policy {i:04d}", "state": "enabled", "passwordMinimumLength": 12,
                         "conditions": {"users": {"includeUsers": ["All"]}, "platforms": ["windows", "iOS"]},
                         "settings": [{"key": f"setting-{j}", "value": j * i % 7} for j in range(8)]}}
            for i in range(ITEMS)])
        user = User(email="bench-manager@example.test", name="Bench Manager", password_hash="x")
        db.session.add(user)
        db.session.flush()
        db.session.add(Membership(user_id=user.id, workspace_id=db.session.get(Tenant, tenant_id).workspace_id,
                                  role="manager"))
        db.session.commit()


def timed_run(config, poller, start) -> tuple[int, float, float]:
    """start() → run id, inside an app context; returns (run id, seam seconds, wall seconds)."""
    pool = WorkerPool(1, "app", config)
    try:
        t0 = time.perf_counter()
        run_id = start()
        t_start = time.perf_counter() - t0
        pool.release()
        wait_until(lambda: poller.execute("SELECT status FROM operation_runs WHERE id = %s",
                                          (run_id,)).fetchone()[0] == "completed",
                   t0, TIMEOUT, 0.01, f"run {run_id} completed")
        wall = time.perf_counter() - t0
        pool.wait()
    finally:
        pool.kill()
    return run_id, t_start, wall


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def main() -> int:
    global ITEMS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--items", type=int, default=ITEMS, help=f"policies in the backup set (default {ITEMS})")
    args = parser.parse_args()
    ITEMS, reps = args.items, max(1, args.reps)
    began = time.monotonic()
    print_header(f"bench/restore.py — restore of a {ITEMS}-item backup set (simulated provider)",
                 "capture, preview, execute (all items drifted) and execute again (nothing to do); 1 worker process; "
                 f"{reps} repetition(s)")
    app, config, (tenant_id,) = setup(1)
    poller = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=True)
    checks_ok = True
    labels = ("capture", "preview (wizard step 4)", f"execute, all {ITEMS} drifted", "execute again, nothing to do")
    figures: dict = {label: {"rate": [], "time": []} for label in labels}
    try:
        from sqlalchemy import select

        from tenantpilot.actors import Actor
        from tenantpilot.extensions import db
        from tenantpilot.models import OperationRun, Tenant, User
        from tenantpilot_restore import service
        from tenantpilot_restore.models import BackupItem, BackupSet, RestoreRun
        from tenantpilot_simulated import client as sim

        seed_state(app, tenant_id)

        def capture():
            with app.app_context():
                user = db.session.scalars(select(User)).one()
                return service.start_capture(tenant_id, Actor.human(user)).run.id

        def record(label, count, seconds):
            figures[label]["rate"].append(count / seconds)
            figures[label]["time"].append(seconds)

        for rep in range(1, reps + 1):
            run_id, t_seam, wall = timed_run(config, poller, capture)
            with app.app_context():
                backup = db.session.scalars(select(BackupSet).where(BackupSet.operation_run_id == run_id)).one()
                backup_id, captured = backup.id, backup.item_count
            checks_ok &= captured == ITEMS
            record(labels[0], captured, wall)
            print(f"rep {rep} capture: run #{run_id}, {captured} items in {wall:.2f} s → {captured / wall:,.0f} "
                  f"items/s (seam {t_seam * 1000:.1f} ms)", flush=True)

            poller.execute("UPDATE sim_policies SET payload = jsonb_set(payload::jsonb, '{state}', "
                           "'\"disabled\"')::json WHERE tenant_id = %s", (tenant_id,))

            with app.app_context():
                items = list(db.session.scalars(select(BackupItem).where(BackupItem.backup_set_id == backup_id)
                                                .order_by(BackupItem.id)))
                t0 = time.perf_counter()
                rows = service.preview(tenant_id, items)
                t_preview = time.perf_counter() - t0
                changing = sum(r.action == "update" for r in rows)
            checks_ok &= changing == ITEMS
            record(labels[1], len(rows), t_preview)
            print(f"rep {rep} preview (wizard step 4): {len(rows)} items read and diffed in {t_preview * 1000:.0f} ms "
                  f"({len(rows) / t_preview:,.0f} items/s); {changing} will be updated", flush=True)

            for label in labels[2:]:
                def execute():
                    with app.app_context():
                        tenant, user = db.session.get(Tenant, tenant_id), db.session.scalars(select(User)).one()
                        backup = db.session.get(BackupSet, backup_id)
                        its = list(db.session.scalars(select(BackupItem)
                                                      .where(BackupItem.backup_set_id == backup_id)))
                        result, rr = service.start_restore(tenant, backup, its, "all", user)
                        if result.status != "started":
                            raise RuntimeError(f"start returned {result.status}: {result.message}")
                        return result.run.id

                run_id, t_seam, wall = timed_run(config, poller, execute)
                with app.app_context():
                    run = db.session.get(OperationRun, run_id)
                    counts, outcome = dict(run.summary_counts), run.outcome
                    rr = db.session.scalars(select(RestoreRun).where(RestoreRun.operation_run_id == run_id)).one()
                    slow = (run.completed_at - run.started_at).total_seconds() if run.started_at else 0.0
                    state = sim.state(tenant_id)
                    wanted = {(i.policy_type, i.external_id): i.payload for i in db.session.scalars(
                        select(BackupItem).where(BackupItem.backup_set_id == backup_id))}
                expected = ("applied", ITEMS) if "drifted" in label else ("unchanged", ITEMS)
                ok = (outcome == "succeeded" and counts.get(expected[0]) == expected[1]
                      and counts.get("items_failed") == 0 and state == wanted)
                checks_ok &= ok
                record(label, ITEMS, wall)
                print(f"rep {rep} {label}: restore #{rr.id} / run #{run_id}, {ITEMS} items end to end in {wall:.2f} s "
                      f"→ {ITEMS / wall:,.0f} items/s (seam {t_seam * 1000:.1f} ms, job {slow:.2f} s); "
                      f"applied={counts.get('applied')} unchanged={counts.get('unchanged')} "
                      f"failed={counts.get('items_failed')} outcome={outcome}; state == backup: {state == wanted}",
                      flush=True)
        print()
        print(f"median over {reps} repetition(s) (min–max); capture and execute end to end, preview in-process")
        print(f"{'scenario':<32} | {'items/s':>22} | {'seconds':>22}")
        print(f"{'-' * 32}-+-{'-' * 22}-+-{'-' * 22}")
        for label in labels:
            f = figures[label]
            print(f"{label:<32} | {spread(f['rate'], ',.0f'):>22} | {spread(f['time'], '.3f'):>22}")
        print()
        return checks_verdict(checks_ok, began)
    finally:
        poller.close()
        teardown(app)

if __name__ == "__main__":
    sys.exit(main())
