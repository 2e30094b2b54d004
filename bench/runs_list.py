"""Runs list latency: GET /system/ops/runs with 1,000,000 runs in the table.

Data (bulk-loaded with INSERT … SELECT FROM generate_series, fixed random seed, ~1 min):
- 1,000,000 operation_runs, ids 1..N, created_at spread evenly over the last 90 days and
  increasing with id (the newest run is a few seconds old, ~11,100 runs per 24h);
- 10 types, skewed from 30% (directory.sync) down to 0.02% (tenant.offboard);
- status: the newest 40 runs queued/running, every other run completed; outcomes
  ~85% succeeded, 6% partially_succeeded, 5% failed, 2% cancelled, 2% blocked;
- scope: 35% single_tenant (tenant_id set, one operation_run_tenants row each, like the
  seam writes), 0.1% all_tenants (~1,000 runs with a row for every tenant: ~1M rows),
  the rest workspace runs (tenant_id NULL; their tenant rows are left out: a sample);
- 1,000 tenants; the first is a typical "busy" tenant (~350 own runs + every all-tenants
  run, ~1,300 matches); the last is "offboarded": ~25 own runs and the all-tenants runs
  of the oldest 5% of the table only (~85 matches, all far down the id order);
- then VACUUM ANALYZE (what autovacuum would have done on a table this old).

Each case: 5 warm-up requests, then 30 timed GETs through the Flask test client, signed
in (real login form) as a platform user holding every capability; the whole request is
timed (session/user load, the query, rendering 50 rows). "sql ms" is the median of 10
direct executions of the list query the view sent (captured from the engine), so
"page - sql" is the fixed per-request cost. The data is loaded once; the cases are timed
REPS times (``--reps``, default 3; each repetition runs every case in turn, warm-ups
included) and every figure is printed as the median over the repetitions and its spread
(min–max): each repetition's median, p95 and sql ms. For the slowest case (by that
median) the script prints the top plan node and execution time of EXPLAIN (ANALYZE,
BUFFERS) of that same statement. ``--runs`` / ``--tenants`` size the data (defaults
1,000,000 and 1,000; the shares above scale with them).

Run from the repository root with the venv active:
    python bench/runs_list.py [--reps 3] [--runs 1000000] [--tenants 1000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta

import psycopg

from _common import DATABASE_URL, _libpq_url, ms, percentile, print_header, setup, teardown

N_RUNS = 1_000_000
N_TENANTS = 1000
REQUESTS = 30
WARMUP = 5
SQL_REPEATS = 10
DAYS = 90
SLOW_MS = 50.0
ACTIVE_NEWEST = 40  # the newest runs are still queued/running
OFFBOARD_BEFORE = N_RUNS // 20  # the offboarded tenant only appears in the oldest 5%

# (type, label, weight %)
TYPES = [
    ("directory.sync", "Directory sync", 30.0),
    ("policy.evaluate", "Policy evaluation", 20.0),
    ("backup.snapshot", "Backup snapshot", 15.0),
    ("license.reconcile", "License reconcile", 10.0),
    ("findings.scan", "Findings scan", 8.0),
    ("report.generate", "Report generation", 7.0),
    ("mailbox.audit", "Mailbox audit", 5.0),
    ("ops.pipeline_canary", "Pipeline canary", 3.0),
    ("secrets.rotate", "Secrets rotation", 1.98),
    ("tenant.offboard", "Tenant offboarding", 0.02),
]

def load(tenant_ids: list[int], workspace_id: int) -> dict:
    """Bulk-load runs and tenant rows; returns counts for the report."""
    from tenantpilot.timeutil import utcnow

    t0 = utcnow() - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / N_RUNS
    types_sql, lo = [], 0.0
    for key, label, weight in TYPES:
        hi = lo + weight / 100
        types_sql.append(f"('{key}', '{label}', {lo:.6f}, {1.0 if key == TYPES[-1][0] else hi:.6f})")
        lo = hi
    busy, quiet = tenant_ids[0], tenant_ids[-1]
    counts = {}
    with psycopg.connect(_libpq_url(DATABASE_URL), autocommit=False) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.42)")
        t = time.perf_counter()
        conn.execute(f"""
WITH types(key, label, lo, hi) AS (VALUES {", ".join(types_sql)}),
s AS (
  SELECT i, random() AS r_type, random() AS r_scope, random() AS r_out, random() AS r_tenant,
         random() AS r_quiet, random() AS r_dur, random() AS r_src
  FROM generate_series(1, %(n)s) AS i OFFSET 0
),
k AS (
  SELECT s.*, t.key AS typ, t.label,
         CASE WHEN r_scope < 0.35 THEN 'single_tenant' WHEN r_scope < 0.351 THEN 'all_tenants'
              ELSE 'workspace' END AS kind,
         %(t0)s::timestamp + (i - 1) * %(step)s::interval AS created,
         i > %(n)s - %(active)s AS active,
         CASE WHEN r_out < 0.85 THEN 'succeeded' WHEN r_out < 0.91 THEN 'partially_succeeded'
              WHEN r_out < 0.96 THEN 'failed' WHEN r_out < 0.98 THEN 'cancelled' ELSE 'blocked' END AS done_outcome
  FROM s JOIN types t ON s.r_type >= t.lo AND s.r_type < t.hi
  OFFSET 0
),
r AS (
  SELECT k.*,
         CASE WHEN kind <> 'single_tenant' THEN NULL
              WHEN i <= %(offboard)s AND r_quiet < 0.0015 THEN %(quiet)s
              ELSE (%(tids)s::int[])[1 + floor(r_tenant * (%(nt)s - 1))::int] END AS tid,
         CASE WHEN kind = 'single_tenant' THEN 1 WHEN kind = 'all_tenants' THEN
              CASE WHEN i <= %(offboard)s THEN %(nt)s ELSE %(nt)s - 1 END ELSE 0 END AS total
  FROM k
)
INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, outcome, initiator_name,
  run_identity_hash, scope_lock, summary_counts, failure_summary, context, tenants_total, tenants_done,
  tenants_failed, tenants_skipped, cancel_requested, parent_run_id, created_at, started_at, completed_at)
SELECT i, %(ws)s, tid, typ,
  CASE WHEN NOT active THEN 'completed' WHEN i > %(n)s - %(active)s / 2 THEN 'queued' ELSE 'running' END,
  CASE WHEN active THEN 'pending' ELSE done_outcome END,
  CASE WHEN r_src < 0.3 THEN 'Operator ' || (1 + floor(r_src * 30)::int) END,
  md5(i::text) || md5((-i)::text),
  CASE WHEN kind = 'all_tenants' THEN typ || ':all_tenants' END,
  json_build_object('tenants', total, 'failed', CASE WHEN done_outcome = 'failed' AND NOT active THEN total
                                                     WHEN done_outcome = 'partially_succeeded' AND NOT active
                                                     THEN greatest(1, total / 20) ELSE 0 END),
  '[]'::json,
  json_build_object('operation_label', label,
                    'scope', json_build_object('kind', kind, 'tenant_id', tid,
                                               'workspace_id', CASE WHEN kind = 'workspace' THEN %(ws)s END),
                    'source', CASE WHEN r_src < 0.3 THEN 'system_ui' WHEN r_src < 0.4 THEN 'cli' ELSE 'schedule' END,
                    'initiator', CASE WHEN r_src < 0.3
                                      THEN json_build_object('type', 'platform', 'id', 1,
                                                             'name', 'Operator ' || (1 + floor(r_src * 30)::int),
                                                             'break_glass', false)
                                      ELSE json_build_object('type', 'system', 'id', NULL, 'name', 'System',
                                                             'break_glass', false) END,
                    'break_glass', false, 'identity_inputs', '{{}}'::json),
  total,
  CASE WHEN active THEN total / 2 ELSE total END,
  CASE WHEN active THEN 0 WHEN done_outcome = 'failed' THEN total
       WHEN done_outcome = 'partially_succeeded' THEN greatest(1, total / 20) ELSE 0 END,
  0, done_outcome = 'cancelled' AND NOT active, NULL,
  created, created + interval '2 seconds',
  CASE WHEN NOT active THEN created + interval '2 seconds' + r_dur * interval '10 minutes' END
FROM r
""", {"n": N_RUNS, "t0": t0, "step": step, "active": ACTIVE_NEWEST, "offboard": OFFBOARD_BEFORE,
      "quiet": quiet, "tids": tenant_ids, "nt": N_TENANTS, "ws": workspace_id})
        conn.execute("SELECT setval(pg_get_serial_sequence('operation_runs', 'id'), %s)", (N_RUNS,))
        counts["runs_s"] = time.perf_counter() - t
        t = time.perf_counter()
        # Tenant rows: one per single-tenant run, one per tenant per all-tenants run.
        conn.execute("""
INSERT INTO operation_run_tenants (run_id, tenant_id, status, counts, accounted, started_at, finished_at)
SELECT r.id, r.tenant_id,
       CASE WHEN r.status <> 'completed' THEN 'pending' WHEN r.outcome IN ('failed', 'partially_succeeded')
            THEN 'failed' WHEN r.outcome IN ('cancelled', 'blocked') THEN 'cancelled' ELSE 'succeeded' END,
       '{}'::json, r.status = 'completed', r.started_at, r.completed_at
FROM operation_runs r WHERE r.tenant_id IS NOT NULL
""")
        conn.execute("""
INSERT INTO operation_run_tenants (run_id, tenant_id, status, counts, accounted, started_at, finished_at)
SELECT r.id, t.id,
       CASE WHEN r.status <> 'completed' THEN 'pending'
            WHEN r.outcome = 'failed' OR (r.outcome = 'partially_succeeded' AND t.id %% 20 = 0) THEN 'failed'
            WHEN r.outcome IN ('cancelled', 'blocked') THEN 'cancelled' ELSE 'succeeded' END,
       '{}'::json, r.status = 'completed', r.started_at, r.completed_at
FROM operation_runs r CROSS JOIN unnest(%(tids)s::int[]) AS t(id)
WHERE r.scope_lock IS NOT NULL AND (t.id <> %(quiet)s OR r.id <= %(offboard)s)
""", {"tids": tenant_ids, "quiet": quiet, "offboard": OFFBOARD_BEFORE})
        counts["tenant_rows_s"] = time.perf_counter() - t
        conn.commit()
        t = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE operation_runs")
        conn.execute("VACUUM ANALYZE operation_run_tenants")
        counts["vacuum_s"] = time.perf_counter() - t
        q = conn.execute
        counts["runs"] = q("SELECT count(*) FROM operation_runs").fetchone()[0]
        counts["with_tenant"] = q("SELECT count(*) FROM operation_runs WHERE tenant_id IS NOT NULL").fetchone()[0]
        counts["all_tenants"] = q("SELECT count(*) FROM operation_runs WHERE scope_lock IS NOT NULL").fetchone()[0]
        counts["tenant_rows"] = q("SELECT count(*) FROM operation_run_tenants").fetchone()[0]
        counts["failed"] = q("SELECT count(*) FROM operation_runs WHERE outcome = 'failed'").fetchone()[0]
        counts["last_24h"] = q("SELECT count(*) FROM operation_runs WHERE created_at >= %s",
                               (utcnow() - timedelta(hours=24),)).fetchone()[0]
        for label, tid in (("busy", busy), ("quiet", quiet)):
            counts[f"{label}_matches"] = q(
                "SELECT count(*) FROM operation_runs r WHERE r.tenant_id = %(t)s OR EXISTS ("
                "SELECT 1 FROM operation_run_tenants rt WHERE rt.run_id = r.id AND rt.tenant_id = %(t)s)",
                {"t": tid}).fetchone()[0]
        counts["types"] = dict(q("SELECT type, count(*) FROM operation_runs GROUP BY type").fetchall())
        counts["size"] = q("SELECT pg_size_pretty(pg_total_relation_size('operation_runs')), "
                           "pg_size_pretty(pg_total_relation_size('operation_run_tenants'))").fetchone()
    return counts


class Capture:
    """Records the runs-list SELECT the view sends (statement + parameters)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine, self.last, self.on = engine, None, False
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and "FROM operation_runs" in statement and "ORDER BY operation_runs.id DESC" in statement:
            self.last = (statement, parameters)


def time_cases(client, cases, capture, app) -> list[dict]:
    from tenantpilot.extensions import db

    results = []
    for label, url in cases:
        for _ in range(WARMUP):
            resp = client.get(url)
            if resp.status_code != 200:
                raise RuntimeError(f"{url} answered {resp.status_code}")
        samples = []
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            resp = client.get(url)
            samples.append(time.perf_counter() - t0)
            assert resp.status_code == 200
        capture.on = True
        page = client.get(url).get_data(as_text=True)
        capture.on = False
        statement, params = capture.last
        rows = page.count("<tr data-run=")
        with app.app_context():
            conn = db.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute(statement, params)  # warm
                sql = []
                for _ in range(SQL_REPEATS):
                    t0 = time.perf_counter()
                    cur.execute(statement, params)
                    cur.fetchall()
                    sql.append(time.perf_counter() - t0)
            finally:
                conn.close()
        results.append({"label": label, "url": url, "samples": samples, "sql": statistics.median(sql),
                        "rows": rows, "statement": statement, "params": params})
    return results


def spread(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} ({ms(min(values))}–{ms(max(values))})"


def summarize(reps: list[list[dict]]) -> list[dict]:
    """Per case, the repetitions' medians, p95s and sql figures (and the case's last capture)."""
    out = []
    for per_case in zip(*reps):
        r = dict(per_case[-1])
        r["medians"] = [statistics.median(x["samples"]) for x in per_case]
        r["p95s"] = [percentile(x["samples"], 95) for x in per_case]
        r["sqls"] = [x["sql"] for x in per_case]
        r["median"] = statistics.median(r["medians"])
        out.append(r)
    return out


def print_results(results, reps: int) -> None:
    print(f"ms per request: median over {reps} repetition(s) of each repetition's figure (min–max)")
    print(f"{'case':<44} {'rows':>4} {'median ms':>22} {'p95 ms':>22} {'sql ms':>20}   url")
    for r in results:
        print(f"{r['label']:<44} {r['rows']:>4} {spread(r['medians']):>22} {spread(r['p95s']):>22} "
              f"{spread(r['sqls']):>20}   {r['url']}")


def explain(app, result) -> None:
    from tenantpilot.extensions import db

    with app.app_context():
        conn = db.engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + result["statement"], result["params"])
            lines = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
    top = [lines[0]] + [ln for ln in lines[1:3] if ln.lstrip().startswith("Buffers")]
    print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest case, {result['label']!r}:")
    for ln in top + [ln for ln in lines if ln.startswith(("Planning Time", "Execution Time"))]:
        print("   ", ln)


def main() -> int:
    global N_RUNS, N_TENANTS, OFFBOARD_BEFORE
    from sqlalchemy import select

    from tenantpilot.extensions import db
    from tenantpilot.models import Tenant, Workspace
    from tenantpilot.testing import Factory, login

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every case (default 3)")
    parser.add_argument("--runs", type=int, default=N_RUNS, help=f"runs in the table (default {N_RUNS:,})")
    parser.add_argument("--tenants", type=int, default=N_TENANTS, help=f"tenants (default {N_TENANTS:,})")
    args = parser.parse_args()
    N_RUNS, N_TENANTS, OFFBOARD_BEFORE, reps = args.runs, args.tenants, args.runs // 20, max(1, args.reps)
    print_header(f"bench/runs_list.py — runs list page latency at {N_RUNS:,} runs",
                 f"GET /system/ops/runs, {WARMUP} warm-up + {REQUESTS} timed requests per case, {reps} repetition(s), "
                 "Flask test client")
    app, config, tenant_ids = setup(N_TENANTS)
    try:
        with app.app_context():
            workspace_id = db.session.scalar(select(Tenant.workspace_id).where(Tenant.id == tenant_ids[0]))
            workspace_name = db.session.scalar(select(Workspace.name).where(Workspace.id == workspace_id))
        t = time.perf_counter()
        c = load(tenant_ids, workspace_id)
        print(f"loaded in {time.perf_counter() - t:.1f} s (runs {c['runs_s']:.1f} s, tenant rows "
              f"{c['tenant_rows_s']:.1f} s, VACUUM ANALYZE {c['vacuum_s']:.1f} s); sizes with indexes: "
              f"operation_runs {c['size'][0]}, operation_run_tenants {c['size'][1]}")
        print(f"runs {c['runs']:,}; with tenant_id {c['with_tenant']:,}; all-tenants runs {c['all_tenants']:,}; "
              f"tenant rows {c['tenant_rows']:,}; outcome=failed {c['failed']:,}; last 24h {c['last_24h']:,}")
        print("types: " + ", ".join(f"{k} {v:,}" for k, v in sorted(c["types"].items(), key=lambda kv: -kv[1])))
        busy, quiet = tenant_ids[0], tenant_ids[-1]
        print(f"tenant filter matches: busy tenant {busy} → {c['busy_matches']:,} runs; "
              f"offboarded tenant {quiet} → {c['quiet_matches']:,} runs (all among the oldest {OFFBOARD_BEFORE:,} ids)")
        print()

        user = Factory(app).platform_user(email="bench-ops@example.test")
        client = app.test_client()
        resp = login(client, "system", user.email, "platform-pass-123")
        if resp.status_code != 302:
            raise RuntimeError(f"login answered {resp.status_code}")
        base = "/system/ops/runs"
        part = sum(str(i).startswith("1") for i in range(N_TENANTS))  # names "Bench tenant {i}"
        cases = [
            ("first page, no filter", base),
            ("deep page, before=middle", f"{base}?before={N_RUNS // 2}"),
            ("deep page, before=near oldest", f"{base}?before={N_RUNS // 500}"),
            ("type=directory.sync (30%)", f"{base}?type=directory.sync"),
            ("type=tenant.offboard (0.02%)", f"{base}?type=tenant.offboard"),
            ("outcome=failed (5%)", f"{base}?outcome=failed"),
            ("tenant=busy tenant", f"{base}?tenant={busy}"),
            ("tenant=offboarded tenant", f"{base}?tenant={quiet}"),
            # Typed names (issue 13): an exact name resolves to one tenant (the id path); part
            # of a name matches many ("bench tenant 1": 1, 10–19, 100–199 → 111 of 1,000 tenants).
            ("tenant_name=exact (busy tenant)", f"{base}?tenant_name=Bench+tenant+0"),
            (f"tenant_name=part ({part} tenants)", f"{base}?tenant_name=bench+tenant+1"),
            ("workspace_name=exact", f"{base}?workspace_name=" + workspace_name.replace(" ", "+")),
            ("window=24h", f"{base}?window=24h"),
        ]
        with app.app_context():
            capture = Capture(db.engine)
        per_rep = []
        for rep in range(reps):
            per_rep.append(time_cases(client, cases, capture, app))
            print(f"rep {rep + 1}: " + ", ".join(f"{ms(statistics.median(r['samples']))}" for r in per_rep[-1])
                  + " ms (median per case, in table order)", flush=True)
        print()
        results = summarize(per_rep)
        print_results(results, reps)
        print()
        slowest = max(results, key=lambda r: r["median"])
        explain(app, slowest)
        slow = [r["label"] for r in results if r["median"] * 1000 > SLOW_MS]
        print(f"cases over {SLOW_MS:.0f} ms median: {', '.join(slow) if slow else 'none'}")
        return 0
    finally:
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
