"""Findings lifecycle backfill throughput (the findings plugin's runbook).

- one tenant with 100,000 legacy findings: one single-tenant run (one tenant job);
- 1,000 tenants x 100 legacy findings: one all-tenants run (40 jobs of 25 tenants);
each drained by 1 and then 2 worker PROCESSES running the real AppWorker
(bench/_worker.py). Wall time from seam.start() to the run row reading 'completed'
(polled in the database); throughput = findings scanned / wall time. Before every
measurement the findings are regenerated (same seed, so the same legacy mix) and the
preflight is timed; the run's `updated` must equal the preflight's `affected_count`.
The first scenario is then run once more to show idempotence (`updated` = 0), and a
last row shows the worst case for duplicate consolidation: one tenant whose 20,000
findings are all open copies of one drift finding (linear, not quadratic).

The legacy mix (generated in SQL): ~55% without first/last seen, ~45% with a legacy status
(open/acknowledged/fixed), no SLA due date on ~80%, half of them drift findings whose
fingerprints repeat (duplicate groups of ~3).

Backends: PostgreSQL database ``tenantpilot_bench_findings`` (created if missing; its
public schema is dropped and rebuilt with `upgrade heads`) and Redis db 15; override with
BENCH_FINDINGS_DATABASE_URL / BENCH_FINDINGS_REDIS_URL.
Run from the repository root with the venv active:  python bench/backfill.py
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


def main() -> int:
    began = time.monotonic()
    print_header("bench/backfill.py — findings lifecycle backfill throughput",
                 "1 tenant x 100,000 legacy findings and 1,000 tenants x 100; 1 and 2 worker processes")
    app, config, big = setup(1)
    small = seed_tenants(app, 1000)
    poller = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=True)
    rows, checks_ok = [], True
    try:
        scenarios = [
            ("1 tenant x 100,000", {"kind": "single_tenant", "tenant_id": big[0]}, big, 100_000),
            ("1,000 tenants x 100", {"kind": "workspace", "workspace_id": None}, small, 100),
        ]
        with app.app_context():
            from tenantpilot.extensions import db
            from tenantpilot.models import Tenant

            scenarios[1][1]["workspace_id"] = db.session.get(Tenant, small[0]).workspace_id
        for label, scope, tenants, per_tenant in scenarios:
            for workers in (1, 2):
                gen = regenerate(poller, tenants, per_tenant)
                pf, pf_time = preflight(app, scope)
                r = run_once(app, config, scope, workers, poller)
                c = r["counts"]
                ok = (c.get("updated") == pf["affected_count"] and c.get("total") == pf["total_count"]
                      and r["failed"] == 0 and r["outcome"] == "succeeded")
                checks_ok &= ok
                print(f"{label}, {workers} worker(s): generated {pf['total_count']:,} findings in {gen:.1f} s; "
                      f"preflight {pf_time * 1000:.0f} ms (affected {pf['affected_count']:,} in "
                      f"{pf['estimated_tenants']:,} tenant(s)); run #{r['run_id']} completed after "
                      f"{r['wall']:.2f} s (slowest tenant {r['slowest_tenant'] * 1000:.0f} ms); "
                      f"updated={c.get('updated'):,} skipped={c.get('skipped'):,} tenants={c.get('tenants')} "
                      f"failed={c.get('failed')} outcome={r['outcome']}; updated == preflight affected: "
                      f"{c.get('updated') == pf['affected_count']}")
                rows.append((f"{label}, {workers} worker(s)", pf["total_count"] / r["wall"]))
            if label.startswith("1 tenant"):
                # Idempotence on the big tenant: a second run over repaired data.
                pf, pf_time = preflight(app, scope)
                r = run_once(app, config, scope, 1, poller)
                ok = r["counts"].get("updated") == 0 and pf["affected_count"] == 0
                checks_ok &= ok
                print(f"{label}, second run (1 worker): preflight {pf_time * 1000:.0f} ms, affected "
                      f"{pf['affected_count']}; run #{r['run_id']} completed after {r['wall']:.2f} s, "
                      f"updated={r['counts'].get('updated')} (== 0: {r['counts'].get('updated') == 0})")
                rows.append((f"{label}, re-run (nothing to do)", r["counts"]["total"] / r["wall"]))
        # Worst case for consolidation: every finding is a copy of one drift finding.
        scope = {"kind": "single_tenant", "tenant_id": big[0]}
        gen = one_group(poller, big[0], 20_000)
        pf, pf_time = preflight(app, scope)
        r = run_once(app, config, scope, 1, poller)
        ok = r["counts"].get("updated") == pf["affected_count"] == 20_000 and r["outcome"] == "succeeded"
        checks_ok &= ok
        print(f"1 tenant x 20,000 copies of one drift finding, 1 worker: preflight {pf_time * 1000:.0f} ms; "
              f"run #{r['run_id']} completed after {r['wall']:.2f} s; updated={r['counts'].get('updated'):,} "
              f"(19,999 consolidated + the survivor's dates)")
        rows.append(("1 tenant, one drift group of 20,000, 1 worker", 20_000 / r["wall"]))
        print()
        print(f"{'scenario':<46} | {'throughput':>16}")
        print(f"{'-' * 46}-+-{'-' * 17}")
        for label, rate in rows:
            print(f"{label:<46} | {rate:>9,.0f} findings/s")
        print()
        return checks_verdict(checks_ok, began)
    finally:
        poller.close()
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
