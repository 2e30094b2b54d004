"""Operational-control evaluator latency, and what a control check adds to a start.

- evaluate(key, workspace): one indexed query, fresh every call (no cache by design: a
  stale page must never start a blocked action). Measured with 0, 100 and 10,000 active
  pause rows spread over 50 control keys and 10,000 workspaces, for an enabled key, a
  workspace-paused key and a globally paused key.
- seam.start for one tenant: allowed (creates the run and enqueues) vs blocked by a
  workspace pause (evaluates, writes the blocked audit event, creates nothing).

Every case is timed REPS times (``--reps``, default 3) of N calls (``--n``, default 2,000;
the seam cases STARTS calls, ``--starts``, default 200): the pause rows are loaded once per
row count, and each repetition of the seam cases starts runs on tenants of its own (a
start on a tenant whose run is still queued would be a dedup hit, not a new run). Printed
per case: the median, p95 and p99 of each repetition, as their median over the
repetitions and spread (min–max). Checks (every call): evaluate() finds no pause once the
key's rows are gone, allowed starts return 'started', blocked ones 'blocked'.

Run from the repository root with the venv active:
    python bench/evaluator.py [--reps 3] [--n 2000] [--starts 200]
"""
from __future__ import annotations

import argparse
import statistics
import time
import uuid

from _common import checks_verdict, percentile, print_header, setup, teardown

KEY = "findings.lifecycle.backfill"  # from the built-in findings plugin (entry points)
N = 2000
STARTS = 200


def timed(fn, n) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


class Table:
    """Per case: one (median, p95, p99) per repetition, in first-seen order."""

    def __init__(self):
        self.cases: dict[str, list[tuple[float, float, float]]] = {}
        self.n: dict[str, int] = {}

    def add(self, label: str, samples: list[float]) -> None:
        self.cases.setdefault(label, []).append(
            (statistics.median(samples), percentile(samples, 95), percentile(samples, 99)))
        self.n[label] = len(samples)

    def print(self, reps: int) -> None:
        print(f"ms per call: median over {reps} repetition(s) of each repetition's figure (min–max)")
        print(f"{'case':<64} {'n':>5} {'median ms':>24} {'p95 ms':>24} {'p99 ms':>24}")
        for label, figures in self.cases.items():
            med, p95, p99 = zip(*figures)
            print(f"{label:<64} {self.n[label]:>5} {spread(med):>24} {spread(p95):>24} {spread(p99):>24}")


def load_pauses(app, count: int, workspaces: list[int]) -> None:
    from sqlalchemy import delete, insert

    from tenantpilot.extensions import db
    from tenantpilot.models import OperationalControlActivation as A

    with app.app_context():
        db.session.execute(delete(A))
        keys = [f"bench.key_{i:02d}" for i in range(50)]
        if count:  # (key, workspace) pairs are unique: key i % 50 in workspace i // 50
            db.session.execute(insert(A), [
                {"control_key": keys[i % 50], "scope_type": "workspace", "workspace_id": workspaces[i // 50],
                 "reason_text": "bench pause"} for i in range(count)])
        db.session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per case (default 3)")
    parser.add_argument("--n", type=int, default=N, help=f"evaluate() calls per case and repetition (default {N})")
    parser.add_argument("--starts", type=int, default=STARTS,
                        help=f"seam.start calls per case and repetition (default {STARTS})")
    args = parser.parse_args()
    reps, n, starts = max(1, args.reps), args.n, args.starts
    began = time.monotonic()
    print_header("bench/evaluator.py — control evaluator and start-seam control cost",
                 f"evaluate() at 0 / 100 / 10,000 pause rows, {n} calls each; seam.start allowed vs blocked, "
                 f"{starts} calls each; {reps} repetition(s)")
    app, config, tenant_ids = setup(starts * reps)
    try:
        from sqlalchemy import insert, select

        from tenantpilot import controls, seam
        from tenantpilot.actors import Actor
        from tenantpilot.extensions import db
        from tenantpilot.models import OperationalControlActivation as A, Tenant, Workspace
        from tenantpilot.runs import Scope

        with app.app_context():
            db.session.execute(insert(Workspace), [{"name": f"W{i}", "slug": f"bw-{uuid.uuid4().hex[:10]}"}
                                                   for i in range(10_000)])
            db.session.commit()
            workspaces = list(db.session.scalars(select(Workspace.id).order_by(Workspace.id)))
            bench_ws = db.session.scalar(select(Tenant.workspace_id).where(Tenant.id == tenant_ids[0]))
        table = Table()
        for count in (0, 100, 10_000):
            load_pauses(app, count, workspaces)
            for _rep in range(reps):
                with app.app_context():
                    if count:
                        db.session.add(A(control_key=KEY, scope_type="workspace", workspace_id=workspaces[-1],
                                         reason_text="bench"))
                        db.session.commit()
                    table.add(f"evaluate, {count:>6,} rows, key enabled here",
                              timed(lambda: controls.evaluate(KEY, bench_ws), n))
                    if not count:
                        continue  # with no rows there is nothing paused to find
                    table.add(f"evaluate, {count:>6,} rows, workspace-paused",
                              timed(lambda: controls.evaluate(KEY, workspaces[-1]), n))
                    db.session.add(A(control_key=KEY, scope_type="global", reason_text="bench global"))
                    db.session.commit()
                    table.add(f"evaluate, {count:>6,} rows, globally paused",
                              timed(lambda: controls.evaluate(KEY, bench_ws), n))
                    db.session.query(A).filter(A.control_key == KEY).delete()
                    db.session.commit()
                    assert not controls.evaluate(KEY, bench_ws).paused

        # The seam: allowed (one new single-tenant run per call) vs blocked by a workspace pause;
        # each repetition on tenants of its own (their runs stay queued: no worker runs).
        for rep in range(reps):
            mine = tenant_ids[rep * starts:(rep + 1) * starts]
            allowed, blocked = [], []
            for tid in mine:
                with app.app_context():
                    t = time.perf_counter()
                    r = seam.start(KEY, scope=Scope("single_tenant", tenant_id=tid), actor=Actor.system(),
                                   source="cli")
                    allowed.append((time.perf_counter() - t) * 1000)
                    assert r.status == "started", r.status
            with app.app_context():
                db.session.add(A(control_key=KEY, scope_type="workspace", workspace_id=bench_ws, reason_text="bench"))
                db.session.commit()
            for tid in mine:
                with app.app_context():
                    t = time.perf_counter()
                    r = seam.start(KEY, scope=Scope("single_tenant", tenant_id=tid), actor=Actor.system(),
                                   source="cli", identity_inputs={"again": 1})
                    blocked.append((time.perf_counter() - t) * 1000)
                    assert r.status == "blocked", r.status
            with app.app_context():  # lift the pause for the next repetition's allowed starts
                db.session.query(A).filter(A.control_key == KEY, A.workspace_id == bench_ws).delete()
                db.session.commit()
            table.add("seam.start allowed (new run + enqueue)", allowed)
            table.add("seam.start blocked (evaluate + blocked audit, nothing created)", blocked)
        table.print(reps)
        print()
    finally:
        teardown(app)
    return checks_verdict(True, began)  # a failed check raises (assert) before this line


if __name__ == "__main__":
    raise SystemExit(main())
