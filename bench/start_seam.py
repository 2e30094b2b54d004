"""Start-seam latency: what one seam.start() call costs a caller (UI request, CLI, API).

Measures, one call at a time, each in its own app context like a request:
- "new run, system": N single-tenant starts of the canary runbook on N different tenants
  by a system actor (capability check, run + tenant-row insert, enqueue of one job; the
  canary has no control key and a system start records no usage event);
- "new run, tenant user": N single-tenant starts of the findings lifecycle backfill by a
  tenant manager, the full path of issue 17's target: membership check, control
  evaluation, run + tenant rows, the `product.operations.started` usage event, enqueue;
- "dedup hit": the system starts again while those runs are still queued (no worker
  runs), so each one finds the active run and returns it;
- raw RQ enqueue of a trivial job, for comparison with the seam's own cost.

Each repetition builds a fresh schema in a subprocess and prints its figures; the parent
prints the median over repetitions and their spread (min–max) for the median and the p95.

``--baseline REF`` times the seam of git revision REF in the same run: its `tenantpilot`
package (and migrations) are extracted to a temporary folder that goes first on the
subprocess's PYTHONPATH; repetitions alternate baseline / this tree, so both see the same
machine load. Without it, the issue 17 figures are printed as a quoted reference.

Run from the repository root with the venv active:
    python bench/start_seam.py [--n 1000] [--reps 3] [--baseline 21a6f1a]
"""
from __future__ import annotations

import argparse
import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import OPERATION, ms, percentile, print_header, setup, teardown

WARMUP = 20  # extra tenants for warm-up starts (connection pool, caches); not counted
HUMAN_OPERATION = "findings.lifecycle.backfill"  # a tenant-plane start: control key + usage event
ISSUE_17 = {"new run, system": (6.9, 8.9)}  # median, p95 ms as filed (not measured here)
CASES = ("new run, system", "new run, tenant user", "dedup hit (run still queued)", "raw RQ enqueue")
ROOT = Path(__file__).resolve().parent.parent


def measure(n: int) -> dict:
    """One repetition in this process: fresh schema, the four cases, the checks."""
    from sqlalchemy import func, select

    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.models import Membership, OperationRun, ProductUsageEvent, Tenant, User
    from tenantpilot.queue import get_queue
    from tenantpilot.runs import Scope

    app, config, tenant_ids = setup(n + WARMUP)
    prefix = config["TENANTPILOT_QUEUE_PREFIX"]
    system = Actor.system()
    try:
        with app.app_context():
            ws_id = db.session.get(Tenant, tenant_ids[0]).workspace_id
            user = User(email="bench-manager@example.test", name="Bench manager")
            user.set_password("bench-manager-pass")
            db.session.add(user)
            db.session.flush()
            db.session.add(Membership(user_id=user.id, workspace_id=ws_id, role="manager"))
            db.session.commit()
            human = Actor("human", user.id, "Bench manager")  # what a signed-in request holds

        def start(operation, tid, actor, source):
            with app.app_context():
                t0 = time.perf_counter()
                res = seam.start(operation, scope=Scope("single_tenant", tenant_id=tid), actor=actor, source=source)
                elapsed = time.perf_counter() - t0
                return elapsed, res.status, res.run.id if res.run else None

        for tid in tenant_ids[n:]:
            start(OPERATION, tid, system, "cli")
            start(HUMAN_OPERATION, tid, human, "tenant_ui")
        measured = tenant_ids[:n]

        out: dict = {"times": {}, "statuses": {}}
        new_runs = []
        for case, operation, actor, source in (("new run, system", OPERATION, system, "cli"),
                                               ("new run, tenant user", HUMAN_OPERATION, human, "tenant_ui")):
            times, statuses = [], {}
            for tid in measured:
                elapsed, status, run_id = start(operation, tid, actor, source)
                times.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if operation == OPERATION:
                    new_runs.append(run_id)
            out["times"][case], out["statuses"][case] = times, statuses

        dedup, dedup_status, same_run = [], {}, 0
        for tid, run_id in zip(measured, new_runs):
            elapsed, status, got = start(OPERATION, tid, system, "cli")
            dedup.append(elapsed)
            dedup_status[status] = dedup_status.get(status, 0) + 1
            same_run += got == run_id
        out["times"]["dedup hit (run still queued)"], out["statuses"]["dedup"] = dedup, dedup_status

        with app.app_context():
            raw_q = get_queue("rawbench")
            for i in range(WARMUP):
                raw_q.enqueue(operator.neg, 1, job_id=f"{prefix}-rawwarm-{i}")
            raw = []
            for i in range(n):
                t0 = time.perf_counter()
                raw_q.enqueue(operator.neg, 1, job_id=f"{prefix}-raw-{i}")  # id carries the prefix: cleaned up
                raw.append(time.perf_counter() - t0)
            out["times"]["raw RQ enqueue"] = raw
            queued = db.session.scalar(select(func.count()).select_from(OperationRun)
                                       .where(OperationRun.status == "queued"))
            events = db.session.scalar(select(func.count()).select_from(ProductUsageEvent))
            jobs = len(get_queue("runs"))
        runs_expected = 2 * (n + WARMUP)
        out["ok"] = (out["statuses"]["new run, system"] == {"started": n}
                     and out["statuses"]["new run, tenant user"] == {"started": n}
                     and dedup_status == {"deduped": n} and same_run == n
                     and queued == runs_expected and jobs == runs_expected and events == n + WARMUP)
        out["check"] = (f"queued runs {queued}, jobs {jobs} (expected {runs_expected}); usage events {events} "
                        f"(expected {n + WARMUP}: tenant-user starts only); dedup returned the same run {same_run}/{n}")
        return out
    finally:
        teardown(app)  # deletes the queued jobs and every key with this app's prefix


def extract(ref: str) -> str:
    """REF's core package, migrations, templates and built-in plugins in a temporary folder;
    returns the PYTHONPATH that puts them first (each plugin's package shadows this tree's
    editable install, so a plugin never meets a core of another revision)."""
    folder = tempfile.mkdtemp(prefix="tpbench-baseline-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "tenantpilot", "migrations", "templates",
                              "plugins"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    plugin_roots = sorted(str(p) for p in Path(folder, "plugins").iterdir() if p.is_dir())
    return os.pathsep.join([folder, *plugin_roots])


def run_once(n: int, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, "--measure", "--n", str(n)], env=env, text=True,
                          capture_output=True, cwd=str(ROOT))
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError(f"measuring subprocess failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} ({ms(min(values))}–{ms(max(values))})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="starts per case and repetition (default 1000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--baseline", metavar="REF", help="git revision whose seam is timed beside this tree's")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one repetition (subprocess)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.n)))
        return 0

    began = time.monotonic()
    print_header("bench/start_seam.py — start-seam latency",
                 f"{args.n} starts per case, one call at a time; {args.reps} repetitions, each on a fresh schema"
                 + (f"; baseline {args.baseline} timed in the same run, alternating" if args.baseline else ""))
    variants = [("this tree", None)]
    folder = None
    if args.baseline:
        folder = extract(args.baseline)
        variants.insert(0, (f"baseline {args.baseline}", folder))
    results: dict = {name: [] for name, _ in variants}
    try:
        for rep in range(args.reps):
            order = variants if rep % 2 == 0 else variants[::-1]
            for name, path in order:
                res = run_once(args.n, path)
                results[name].append(res)
                print(f"rep {rep + 1} {name:<22} " + "  ".join(
                    f"{case.split(',')[-1].split(' (')[0].strip()}: {ms(statistics.median(res['times'][case]))}/"
                    f"{ms(percentile(res['times'][case], 95))}" for case in CASES) + " ms (median/p95)", flush=True)
    finally:
        if folder:
            subprocess.run(["rm", "-rf", folder], check=False)

    print()
    print(f"{'call':<32} {'code':<22} {'median ms (spread)':>24} {'p95 ms (spread)':>24}")
    for case in CASES:
        for name, _ in variants:
            medians = [statistics.median(r["times"][case]) for r in results[name]]
            p95s = [percentile(r["times"][case], 95) for r in results[name]]
            print(f"{case:<32} {name:<22} {spread(medians):>24} {spread(p95s):>24}")
        if case in ISSUE_17 and not args.baseline:
            med, p95 = ISSUE_17[case]
            print(f"{'':<32} {'issue 17 (quoted)':<22} {med:>24.2f} {p95:>24.2f}"
                  "   ← issue 17 measurement, not this run")
    print()
    ok = True
    for name, _ in variants:
        for i, r in enumerate(results[name], 1):
            print(f"{name} rep {i}: {r['check']}; {'OK' if r['ok'] else 'FAILED'}")
            ok = ok and r["ok"]
    print(f"checks: {'OK' if ok else 'FAILED'}; total time {time.monotonic() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
