"""Start-seam latency: what one seam.start() call costs a caller (UI request, CLI, API).

Measures, one call at a time, each in its own app context like a request:
- "new run": 1,000 single-tenant starts of the canary runbook on 1,000 different tenants
  (capability check, control evaluation, run + tenant-row insert, enqueue of one job);
- "dedup hit": the same 1,000 starts again while those runs are still queued (no worker
  runs), so each one finds the active run and returns it;
- raw RQ enqueue of a trivial job, for comparison with the seam's own cost.

Run from the repository root with the venv active:  python bench/start_seam.py
"""
from __future__ import annotations

import operator
import statistics
import sys
import time

from _common import OPERATION, ms, percentile, print_header, setup, teardown

N = 1000
WARMUP = 20  # extra tenants for warm-up starts (connection pool, caches); not counted


def main() -> int:
    from sqlalchemy import func, select

    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.models import OperationRun
    from tenantpilot.queue import get_queue
    from tenantpilot.runs import Scope

    print_header("bench/start_seam.py — start-seam latency",
                 f"{N} new single-tenant runs, {N} dedup hits, {N} raw RQ enqueues; one call at a time")
    app, config, tenant_ids = setup(N + WARMUP)
    prefix = config["TENANTPILOT_QUEUE_PREFIX"]
    actor = Actor.system()
    try:
        def start(tid):
            with app.app_context():
                t0 = time.perf_counter()
                res = seam.start(OPERATION, scope=Scope("single_tenant", tenant_id=tid), actor=actor, source="cli")
                elapsed = time.perf_counter() - t0
                return elapsed, res.status, res.run.id if res.run else None

        for tid in tenant_ids[N:]:
            start(tid)
        measured = tenant_ids[:N]

        new, new_status, new_runs = [], {}, []
        for tid in measured:
            elapsed, status, run_id = start(tid)
            new.append(elapsed)
            new_status[status] = new_status.get(status, 0) + 1
            new_runs.append(run_id)

        dedup, dedup_status, same_run = [], {}, 0
        for tid, run_id in zip(measured, new_runs):
            elapsed, status, got = start(tid)
            dedup.append(elapsed)
            dedup_status[status] = dedup_status.get(status, 0) + 1
            same_run += got == run_id

        with app.app_context():
            raw_q = get_queue("rawbench")
            for i in range(WARMUP):
                raw_q.enqueue(operator.neg, 1, job_id=f"{prefix}-rawwarm-{i}")
            raw = []
            for i in range(N):
                t0 = time.perf_counter()
                raw_q.enqueue(operator.neg, 1, job_id=f"{prefix}-raw-{i}")  # id carries the prefix: cleaned up
                raw.append(time.perf_counter() - t0)
            queued_runs = db.session.scalar(select(func.count()).select_from(OperationRun)
                                            .where(OperationRun.status == "queued"))
            runs_queue_len = len(get_queue("runs"))

        print(f"{'call':<44} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8}")
        for label, values in (("seam.start — new run", new),
                              ("seam.start — dedup hit (run still queued)", dedup),
                              ("raw RQ Queue.enqueue(operator.neg, 1)", raw)):
            print(f"{label:<44} {len(values):>5} {ms(statistics.median(values)):>10} "
                  f"{ms(percentile(values, 95)):>8} {ms(statistics.mean(values)):>8}")
        print()
        print(f"new-run statuses: {new_status}; dedup statuses: {dedup_status}; "
              f"dedup returned the same run: {same_run}/{N}")
        print(f"queued runs in DB: {queued_runs} (= {N} + {WARMUP} warm-up); jobs in the runs queue: {runs_queue_len}")
        ok = new_status == {"started": N} and dedup_status == {"deduped": N} and same_run == N
        print("checks:", "OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        teardown(app)  # deletes the queued jobs and every key with this app's prefix


if __name__ == "__main__":
    sys.exit(main())
