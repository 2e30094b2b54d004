"""Findings lifecycle backfill throughput (the findings plugin's runbook).

- one tenant with 100,000 legacy findings: one single-tenant run (one tenant job);
- 1,000 tenants x 100 legacy findings: one workspace run (20 RQ jobs of 50 tenants, run in
  groups of TENANTPILOT_FANOUT_GROUP_SIZE=50 tenants per transaction: the group executor);
each drained by 1 and then 2 worker PROCESSES running the real AppWorker
(bench/_worker.py), REPS times (default 3): the table prints the median and the spread
(min-max). Wall time from seam.start() to the run row reading 'completed' (polled in the
database); throughput = findings scanned / wall time. Before every measurement the
findings are regenerated (same seed, so the same legacy mix); the run's `updated` must
equal the preflight's `affected_count` (checked every time).

Beside them, measured in the same run: 1,000 x 100 with groups of one tenant
(TENANTPILOT_FANOUT_GROUP_SIZE=1: a transaction, claim and settle per tenant, as before
the group executor), and the figures issue 17 measured on the old code (42k/s for one
tenant, 12k/s and 26k/s for 1,000 x 100 with 1 and 2 workers), labelled as such: that
code (statements rebuilt per tenant) is not kept runnable.

Round trips are not noisy, so the script also counts them: SQL statements, BEGINs and
COMMITs per tenant over a 200 x 100 run drained in-process, with the default groups and groups of 1.

The first scenario is then run once more to show idempotence (`updated` = 0), and a
last row shows the worst case for duplicate consolidation: one tenant whose 20,000
findings are all open copies of one drift finding (linear, not quadratic).

The legacy mix (generated in SQL): ~55% without first/last seen, ~45% with a legacy status
(open/acknowledged/fixed), no SLA due date on ~80%, half of them drift findings whose
fingerprints repeat (duplicate groups of ~3).

Backends: PostgreSQL database ``tenantpilot_bench_findings`` (created if missing; its
public schema is dropped and rebuilt with `upgrade heads`) and Redis db 15; override with
BENCH_FINDINGS_DATABASE_URL / BENCH_FINDINGS_REDIS_URL.
Run from the repository root with the venv active:  python bench/backfill.py [--reps N] [--quick]
(--quick: 1 repetition, 1 x 20,000 and 200 x 100, for development; not the issue's figures.)
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ["BENCH_DATABASE_URL"] = os.environ.get(
    "BENCH_FINDINGS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tenantpilot_bench_findings")
os.environ["BENCH_REDIS_URL"] = os.environ.get("BENCH_FINDINGS_REDIS_URL", "redis://127.0.0.1:6379/15")

import psycopg  # noqa: E402

from _common import (DATABASE_URL, _libpq_url, checks_verdict, print_header, run_to_completion,  # noqa: E402
                     seed_tenants, setup, teardown)

KEY = "findings.lifecycle.backfill"
POLL = 0.02
TIMEOUT = 300

# Legacy findings for the given tenants, n each, reproducible (setseed).
GENERATE = """
INSERT INTO findings (tenant_id, type, severity, status, title, fingerprint, created_at,
                      first_seen_at, last_seen_at, due_at, resolved_at)
SELECT t.id, k.type, k.severity, k.status, 'Bench finding ' || g, k.fingerprint, k.created,
       CASE WHEN k.r1 < 0.45 THEN k.created END,
       CASE WHEN k.r1 < 0.45 THEN k.created + interval '2 days' END,
       CASE WHEN k.r2 < 0.2 THEN k.created + interval '30 days' END,
       CASE WHEN k.status IN ('fixed', 'resolved') THEN k.created + interval '5 days' END
FROM unnest(%(tenants)s::int[]) AS t(id)
CROSS JOIN generate_series(1, %(per_tenant)s) AS g
CROSS JOIN LATERAL (
  SELECT (ARRAY['drift','permission','compliance'])[1 + (CASE WHEN random() < 0.5 THEN 0
                                                          ELSE 1 + floor(random() * 2)::int END)] AS type,
         (ARRAY['critical','high','medium','low'])[1 + floor(random() * 4)::int] AS severity,
         (ARRAY['open','acknowledged','fixed','new','triaged','in_progress','resolved'])
           [1 + floor(random() * 7)::int] AS status,
         timestamp '2025-01-01' + random() * interval '300 days' AS created,
         random() AS r1, random() AS r2, g AS gg
) k0
CROSS JOIN LATERAL (
  SELECT k0.*, CASE WHEN k0.type = 'drift'
                    THEN 'fp-' || floor(random() * greatest(1, %(per_tenant)s / 6))::int END AS fingerprint
) k
"""


def regenerate(conn, tenants: list[int], per_tenant: int) -> float:
    t0 = time.perf_counter()
    conn.execute("TRUNCATE findings RESTART IDENTITY")
    conn.execute("SELECT setseed(0.42)")
    conn.execute(GENERATE, {"tenants": tenants, "per_tenant": per_tenant})
    conn.execute("ANALYZE findings")
    return time.perf_counter() - t0


ONE_GROUP = """
INSERT INTO findings (tenant_id, type, severity, status, title, fingerprint, created_at)
SELECT %(tenant)s, 'drift', 'high', 'open', 'Same drifted setting', 'fp-same',
       timestamp '2025-01-01' + g * interval '1 minute'
FROM generate_series(1, %(n)s) AS g
"""


def one_group(conn, tenant: int, n: int) -> float:
    t0 = time.perf_counter()
    conn.execute("TRUNCATE findings RESTART IDENTITY")
    conn.execute(ONE_GROUP, {"tenant": tenant, "n": n})
    conn.execute("ANALYZE findings")
    return time.perf_counter() - t0


def preflight(app, scope):
    from tenantpilot_findings.backfill import preflight as pf

    with app.app_context():
        t0 = time.perf_counter()
        result = pf(scope)
        return result, time.perf_counter() - t0


def run_once(app, config, scope, workers: int, poller) -> dict:
    run_id, _, wall = run_to_completion(app, config, workers, poller, KEY, scope, timeout=TIMEOUT, poll=POLL)
    counts, outcome, failed = poller.execute(
        "SELECT summary_counts, outcome, tenants_failed FROM operation_runs WHERE id = %s", (run_id,)).fetchone()
    counts = counts if isinstance(counts, dict) else json.loads(counts)
    slowest = poller.execute(
        "SELECT max(extract(epoch FROM finished_at - started_at)) FROM operation_run_tenants WHERE run_id = %s",
        (run_id,)).fetchone()[0]
    return {"run_id": run_id, "wall": wall, "counts": counts, "outcome": outcome, "failed": failed,
            "slowest_tenant": float(slowest or 0)}


ISSUE_17 = {  # findings/s measured on the old code (issue 17), not re-measured here
    ("big", 1): 42_000, ("small", 1): 12_000, ("small", 2): 26_000,
}


def median_spread(values: list[float]) -> str:
    import statistics

    return f"{statistics.median(values):>9,.0f}  ({min(values):,.0f}-{max(values):,.0f})"


def round_trips(config: dict, tenants: list[int], workspace_id: int, poller, group: int) -> dict:
    """Statements, BEGINs and COMMITs per tenant for one run over ``tenants`` (100
    findings each), drained by an in-process worker with groups of ``group`` tenants."""
    from sqlalchemy import event

    from tenantpilot import seam
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.queue import make_worker
    from tenantpilot.runs import Scope

    from _common import build_app

    app = build_app(dict(config, TENANTPILOT_FANOUT_GROUP_SIZE=group))
    regenerate(poller, tenants, 100)  # ``tenants``: the whole workspace
    counts = {"statements": 0, "begin": 0, "commit": 0}
    with app.app_context():
        engine = db.engine
        res = seam.start(KEY, scope=Scope("workspace", workspace_id=workspace_id), actor=Actor.system("Bench"),
                         source="cli")
        assert res.status == "started", res.status
        run_id = res.run.id
        db.session.remove()

    def counter(name):
        return lambda *a, **k: counts.__setitem__(name, counts[name] + 1)

    listeners = [("before_cursor_execute", counter("statements")), ("begin", counter("begin")),
                 ("commit", counter("commit"))]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        make_worker(app).work(burst=True, logging_level="WARNING")
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)
    status, total = poller.execute("SELECT status, tenants_total FROM operation_runs WHERE id = %s",
                                   (run_id,)).fetchone()
    assert status == "completed" and total == len(tenants), (status, total)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {k: v / len(tenants) for k, v in counts.items()}


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes (development)")
    args = parser.parse_args()
    reps = 1 if args.quick else max(1, args.reps)
    big_n, small_t = (20_000, 200) if args.quick else (100_000, 1000)
    began = time.monotonic()
    print_header("bench/backfill.py — findings lifecycle backfill throughput",
                 f"1 tenant x {big_n:,} legacy findings and {small_t:,} tenants x 100; 1 and 2 worker processes; "
                 f"{reps} repetition(s) each")
    app, config, big = setup(1)
    small = seed_tenants(app, small_t)
    poller = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=True)
    rows, checks_ok = [], True
    try:
        with app.app_context():
            from tenantpilot.extensions import db
            from tenantpilot.models import Tenant

            ws_id = db.session.get(Tenant, small[0]).workspace_id
        group = int(app.config["TENANTPILOT_FANOUT_GROUP_SIZE"])
        scenarios = [
            ("big", f"1 tenant x {big_n:,}", {"kind": "single_tenant", "tenant_id": big[0]}, big, big_n, group),
            ("small", f"{small_t:,} tenants x 100", {"kind": "workspace", "workspace_id": ws_id}, small, 100, group),
            ("small-1", f"{small_t:,} tenants x 100, groups of 1", {"kind": "workspace", "workspace_id": ws_id},
             small, 100, 1),
        ]
        for kind, label, scope, tenants, per_tenant, grp in scenarios:
            run_config = dict(config, TENANTPILOT_FANOUT_GROUP_SIZE=grp)
            for workers in (1, 2):
                rates = []
                for rep in range(reps):
                    gen = regenerate(poller, tenants, per_tenant)
                    pf, pf_time = preflight(app, scope)
                    r = run_once(app, run_config, scope, workers, poller)
                    c = r["counts"]
                    ok = (c.get("updated") == pf["affected_count"] and c.get("total") == pf["total_count"]
                          and r["failed"] == 0 and r["outcome"] == "succeeded")
                    checks_ok &= ok
                    rates.append(pf["total_count"] / r["wall"])
                    print(f"{label}, {workers} worker(s), rep {rep + 1}: generated {pf['total_count']:,} in "
                          f"{gen:.1f} s; preflight {pf_time * 1000:.0f} ms (affected {pf['affected_count']:,} in "
                          f"{pf['estimated_tenants']:,} tenant(s)); run #{r['run_id']} {r['wall']:.2f} s "
                          f"(slowest tenant {r['slowest_tenant'] * 1000:.0f} ms); updated={c.get('updated'):,} "
                          f"skipped={c.get('skipped'):,} tenants={c.get('tenants')} failed={c.get('failed')} "
                          f"outcome={r['outcome']}; updated == preflight affected: {ok}")
                issue = ISSUE_17.get((kind, workers)) if not args.quick else None
                rows.append((f"{label}, {workers} worker(s)", median_spread(rates),
                             f"{issue:,}" if issue else ""))
            if kind == "big":
                # Idempotence on the big tenant: a second run over repaired data.
                pf, pf_time = preflight(app, scope)
                r = run_once(app, config, scope, 1, poller)
                ok = r["counts"].get("updated") == 0 and pf["affected_count"] == 0
                checks_ok &= ok
                print(f"{label}, second run (1 worker): preflight {pf_time * 1000:.0f} ms, affected "
                      f"{pf['affected_count']}; run #{r['run_id']} completed after {r['wall']:.2f} s, "
                      f"updated={r['counts'].get('updated')} (== 0: {r['counts'].get('updated') == 0})")
                rows.append((f"{label}, re-run (nothing to do), 1 worker",
                             median_spread([r["counts"]["total"] / r["wall"]]), ""))
        # Worst case for consolidation: every finding is a copy of one drift finding.
        scope = {"kind": "single_tenant", "tenant_id": big[0]}
        one_group(poller, big[0], 20_000)
        pf, pf_time = preflight(app, scope)
        r = run_once(app, config, scope, 1, poller)
        ok = r["counts"].get("updated") == pf["affected_count"] == 20_000 and r["outcome"] == "succeeded"
        checks_ok &= ok
        print(f"1 tenant x 20,000 copies of one drift finding, 1 worker: preflight {pf_time * 1000:.0f} ms; "
              f"run #{r['run_id']} completed after {r['wall']:.2f} s; updated={r['counts'].get('updated'):,} "
              f"(19,999 consolidated + the survivor's dates)")
        rows.append(("1 tenant, one drift group of 20,000, 1 worker", median_spread([20_000 / r["wall"]]), ""))
        # Round trips per tenant (not noisy): the same 200 x 100 run with the default groups and groups of 1.
        rt_tenants = seed_tenants(app, 200)  # a workspace of their own
        with app.app_context():
            rt_ws = db.session.get(Tenant, rt_tenants[0]).workspace_id
        trips = {g: round_trips(config, rt_tenants, rt_ws, poller, g) for g in (group, 1)}
        print()
        print(f"{'scenario':<52} | {'findings/s: median (min-max)':>31} | {'issue 17 (old code)':>19}")
        print(f"{'-' * 52}-+-{'-' * 31}-+-{'-' * 19}")
        for label, rate, issue in rows:
            print(f"{label:<52} | {rate:>31} | {issue:>19}")
        print()
        print("SQL round trips per tenant, counted in-process over a 200 x 100 run (not noisy):")
        for g, t in trips.items():
            total = t["statements"] + t["begin"] + t["commit"]
            print(f"  groups of {g:>2}: {t['statements']:.2f} statements + {t['begin']:.2f} BEGIN + "
                  f"{t['commit']:.2f} COMMIT = {total:.2f}")
        print("  (issue 17's code: ~7.6 = 5.3 statements + 1.1 BEGIN + 1.1 COMMIT, counted the same way before "
              "the change)")
        print()
        return checks_verdict(checks_ok, began)
    finally:
        poller.close()
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
