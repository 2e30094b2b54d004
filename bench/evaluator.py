"""Operational-control evaluator latency, and what a control check adds to a start.

- evaluate(key, workspace): one indexed query, fresh every call (no cache by design: a
  stale page must never start a blocked action). Measured with 0, 100 and 10,000 active
  pause rows spread over 50 control keys and 10,000 workspaces, for an enabled key, a
  workspace-paused key and a globally paused key.
- seam.start for one tenant: allowed (creates the run and enqueues) vs blocked by a
  workspace pause (evaluates, writes the blocked audit event, creates nothing).

Run from the repository root with the venv active:  python bench/evaluator.py
"""
from __future__ import annotations

import statistics
import time
import uuid

from _common import percentile, print_header, setup, teardown

KEY = "findings.lifecycle.backfill"  # from the built-in findings plugin (entry points)
N = 2000


def timed(fn, n=N) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(label: str, samples: list[float]) -> None:
    print(f"{label:<58} {len(samples):>5} {statistics.median(samples):>9.3f} {percentile(samples, 99):>9.3f}")


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
    print_header("bench/evaluator.py — control evaluator and start-seam control cost",
                 f"evaluate() at 0 / 100 / 10,000 pause rows; seam.start allowed vs blocked; {N} calls each")
    app, config, tenant_ids = setup(200)
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
        print(f"{'case':<58} {'n':>5} {'median ms':>9} {'p99 ms':>9}")
        for count in (0, 100, 10_000):
            load_pauses(app, count, workspaces)
            with app.app_context():
                if count:
                    db.session.add(A(control_key=KEY, scope_type="workspace", workspace_id=workspaces[-1],
                                     reason_text="bench"))
                    db.session.commit()
                row(f"evaluate, {count:>6,} rows, key enabled here", timed(lambda: controls.evaluate(KEY, bench_ws)))
                if not count:
                    continue  # with no rows there is nothing paused to find
                row(f"evaluate, {count:>6,} rows, workspace-paused", timed(lambda: controls.evaluate(KEY, workspaces[-1])))
                db.session.add(A(control_key=KEY, scope_type="global", reason_text="bench global"))
                db.session.commit()
                row(f"evaluate, {count:>6,} rows, globally paused", timed(lambda: controls.evaluate(KEY, bench_ws)))
                db.session.query(A).filter(A.control_key == KEY).delete()
                db.session.commit()
                assert not controls.evaluate(KEY, bench_ws).paused

        # The seam: allowed (one new single-tenant run per call) vs blocked by a workspace pause.
        allowed, blocked = [], []
        for tid in tenant_ids[:200]:
            with app.app_context():
                t = time.perf_counter()
                r = seam.start(KEY, scope=Scope("single_tenant", tenant_id=tid), actor=Actor.system(), source="cli")
                allowed.append((time.perf_counter() - t) * 1000)
                assert r.status == "started", r.status
        with app.app_context():
            db.session.add(A(control_key=KEY, scope_type="workspace", workspace_id=bench_ws, reason_text="bench"))
            db.session.commit()
        for tid in tenant_ids[:200]:
            with app.app_context():
                t = time.perf_counter()
                r = seam.start(KEY, scope=Scope("single_tenant", tenant_id=tid), actor=Actor.system(), source="cli",
                               identity_inputs={"again": 1})
                blocked.append((time.perf_counter() - t) * 1000)
                assert r.status == "blocked", r.status
        row("seam.start allowed (new run + enqueue)", allowed)
        row("seam.start blocked (evaluate + blocked audit, nothing created)", blocked)
        print("checks: OK")
    finally:
        teardown(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
