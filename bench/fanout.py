"""Fan-out throughput: how fast one all-tenants run gets through 2,000 tenants, and how
that compares with what RQ alone can do on this machine.

- fan-out: seam.start() of ONE all_tenants run of the canary runbook (a no-op per
  tenant), drained by 1 and then 2 worker PROCESSES running the real AppWorker; wall time
  from start() to the run row reading status 'completed' (polled in the database), for
  batch sizes TENANTPILOT_FANOUT_BATCH_SIZE (the default, 50), 1 and 100. Every tenant
  costs the ledger a claim and a finish transaction, both locking the run row.
- raw RQ: 2,000 no-op jobs (operator.neg(1)) enqueued on a separate queue with the app's
  prefix and drained by 1 and 2 plain rq.SimpleWorker processes; wall time from enqueue
  to the last job in the finished registry.

Every figure is measured REPS times (``--reps``, default 3; each repetition is a new run
over the same tenants, or a fresh raw queue) and printed as the median and the spread
(min–max); the checks (every tenant counted, none failed) hold for every repetition. The
extra batch sizes are skipped once the script has run for TIME_BUDGET x REPS seconds.
Workers are started and connected before the clock starts (bench/_worker.py).
Run from the repository root with the venv active:
    python bench/fanout.py [--reps 3] [--tenants 2000]
"""
from __future__ import annotations

import argparse
import json
import operator
import statistics
import sys
import time

import psycopg

from _common import (DATABASE_URL, OPERATION, WorkerPool, _libpq_url, build_app, checks_verdict, print_header,
                     run_to_completion, setup, teardown, wait_until)

TENANTS = 2000
EXTRA_BATCH_SIZES = (1, 100)  # besides the configured default (50): extra rows if time allows
TIME_BUDGET = 170  # seconds per repetition: skip the extra rows after this (~4 minutes a repetition)
POLL = 0.01
TIMEOUT = 120


def fanout_once(app, config, workers: int, poller) -> dict:
    run_id, t_start, wall = run_to_completion(app, config, workers, poller, OPERATION, {"kind": "all_tenants"},
                                              timeout=TIMEOUT, poll=POLL)
    row = poller.execute("SELECT summary_counts, tenants_total, tenants_done, tenants_failed, outcome "
                         "FROM operation_runs WHERE id = %s", (run_id,)).fetchone()
    summary = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return {"run_id": run_id, "wall": wall, "start": t_start, "summary": summary, "total": row[1],
            "done": row[2], "failed": row[3], "outcome": row[4]}


def raw_once(app, config, workers: int, rep: int) -> dict:
    from rq import Queue

    prefix = config["TENANTPILOT_QUEUE_PREFIX"]
    q = Queue(f"{prefix}-raw{workers}-{rep}", connection=app.extensions["tenantpilot"].redis)  # fresh registries
    pool = WorkerPool(workers, "raw", config, queue=q.name)
    try:
        t0 = time.perf_counter()
        q.enqueue_many([Queue.prepare_data(operator.neg, args=(1,), job_id=f"{q.name}-{i}")  # prefixed ids
                        for i in range(TENANTS)])
        t_enqueue = time.perf_counter() - t0
        pool.release()
        wait_until(lambda: q.finished_job_registry.count + q.failed_job_registry.count >= TENANTS,
                   t0, TIMEOUT, POLL, "raw queue drained")
        wall = time.perf_counter() - t0
        pool.wait()
    finally:
        pool.kill()
    return {"wall": wall, "start": t_enqueue, "failed": q.failed_job_registry.count}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def main() -> int:
    global TENANTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (default 3)")
    parser.add_argument("--tenants", type=int, default=TENANTS, help=f"tenants in the run (default {TENANTS:,})")
    args = parser.parse_args()
    TENANTS, reps = args.tenants, max(1, args.reps)
    began = time.monotonic()
    print_header("bench/fanout.py — fan-out throughput",
                 f"one all-tenants canary run over {TENANTS} tenants vs raw RQ no-op jobs; "
                 f"1 and 2 worker processes; {reps} repetition(s) each")
    app, config, _ = setup(TENANTS)
    poller = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=True)
    rows, checks_ok = [], True
    try:
        default = app.config["TENANTPILOT_FANOUT_BATCH_SIZE"]
        for batch in (default,) + tuple(b for b in EXTRA_BATCH_SIZES if b != default):
            if batch != default and time.monotonic() - began > TIME_BUDGET * reps:
                print(f"batch size {batch}: skipped (time budget)")
                continue
            # Same database, queue prefix and workers; only the seam's batch size differs.
            batch_app = app if batch == default else build_app({**config, "TENANTPILOT_FANOUT_BATCH_SIZE": batch})
            for workers in (1, 2):
                rates = []
                for rep in range(reps):
                    r = fanout_once(batch_app, config, workers, poller)
                    jobs = -(-TENANTS // batch)
                    ok = r["summary"].get("tenants") == TENANTS and r["failed"] == 0
                    checks_ok &= ok
                    print(f"run {r['run_id']}: batch {batch}, {workers} worker(s), rep {rep + 1}, {jobs} jobs: "
                          f"start() {r['start'] * 1000:.0f} ms, completed after {r['wall']:.2f} s; "
                          f"summary_counts['tenants']={r['summary'].get('tenants')} (== {TENANTS}: "
                          f"{r['summary'].get('tenants') == TENANTS}), tenants_failed={r['failed']} (== 0: "
                          f"{r['failed'] == 0}), outcome={r['outcome']}", flush=True)
                    rates.append(TENANTS / r["wall"])
                rows.append((f"fan-out, batch {batch}, {workers} worker(s)", rates, "tenants/s", batch, workers))
        for workers in (1, 2):
            rates = []
            for rep in range(reps):
                r = raw_once(app, config, workers, rep)
                checks_ok &= r["failed"] == 0
                print(f"raw RQ, {workers} worker(s), rep {rep + 1}: enqueue_many {r['start'] * 1000:.0f} ms, "
                      f"drained after {r['wall']:.2f} s; failed jobs: {r['failed']}", flush=True)
                rates.append(TENANTS / r["wall"])
            rows.append((f"raw RQ no-op, {workers} worker(s)", rates, "jobs/s", None, workers))

        print()
        print(f"{'config':<36} | {'throughput: median (min–max)':>32}")
        print(f"{'-' * 36}-+-{'-' * 32}")
        for label, rates, unit, _b, _w in rows:
            print(f"{label:<36} | {spread(rates):>22} {unit}")
        print()
        for workers in (1, 2):
            fan = next(rates for _l, rates, _u, b, w in rows if b == default and w == workers)
            raw = next(rates for label, rates, _u, _b, w in rows if label.startswith("raw") and w == workers)
            ratios = [f / r for f, r in zip(fan, raw)]  # repetition by repetition
            print(f"ratio fan-out (batch {default}) / raw RQ, {workers} worker(s): "
                  f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) "
                  f"({statistics.median(fan):.0f} tenants/s vs {statistics.median(raw):.0f} jobs/s, medians)")
        return checks_verdict(checks_ok, began)
    finally:
        poller.close()
        teardown(app)

if __name__ == "__main__":
    sys.exit(main())
