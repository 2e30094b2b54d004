"""The control tower GET /system/?window=… at 1,000,000 runs and 10,000,000 telemetry events,
with the hourly runs rollup (tenantpilot/run_rollup.py) and with the raw run queries it
replaced, timed in the same run.

Data (generated in SQL with generate_series, fixed random seeds; ``--scale`` multiplies
both sizes, e.g. --scale 0.01 for 10k runs + 100k events while developing):
- telemetry as bench/telemetry.py generates it (its helpers: 2,000 workspaces with 1-5
  tenants, events over the last 90 days with growth, weekly and daily shape), then VACUUM
  ANALYZE + CHECKPOINT and telemetry.rebuild_rollups();
- runs as bench/runs_list.py generates them (its loader: runs evenly over the last 90 days,
  10 types, the newest 40 queued/running, ~85% succeeded / 6% partially succeeded / 5%
  failed / 2% cancelled / 2% blocked, one tenant row per single-tenant run, a row per tenant
  for the ~0.1% all-tenants runs; failed and partially succeeded runs have failed tenant
  rows), over the first 1,000 tenants; then run_rollup.rebuild() (timed: what migration
  0011's backfill does) and ANALYZE.

Measured per window (24h / 7d / 30d), in the same run, ``ROUNDS`` rounds of ``PAGE_REPS``
timed requests after ``PAGE_WARMUP`` warm-ups, through the Flask test client signed in
(real login form) as a platform user holding every capability, the whole request timed:
- "rollup": the page as shipped (run figures from the rollup + the raw edge hour and
  active runs);
- "raw": the same page with dashboard.run_kpis / top_failing_types / top_failing_tenants
  swapped for the raw queries they replaced (dashboard.raw_*), i.e. the page before;
- the three run functions alone, both ways (median of ``SQL_REPS`` calls).
Exactness (checked, not timed): the rollup figures equal the raw ones for every window, for
the shown top 5 and for every failing type and tenant.
Printed: median and p95 over all timed requests, and the spread (min-max) of the round
medians. Target (issue 17): page p95 ≤ 100 ms for every window at 1M runs + 10M events.

Backends: PostgreSQL database ``tenantpilot_bench_dashboard`` (created if missing; its
public schema is dropped and rebuilt with `upgrade heads`) and Redis db 14; override with
BENCH_DASHBOARD_DATABASE_URL / BENCH_REDIS_URL. At full size generation takes ~10 min on
the 2-core box and ~3 GB of disk.
Run from the repository root with the venv active:  python bench/dashboard.py [--scale S]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

URL = os.environ.get("BENCH_DASHBOARD_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/tenantpilot_bench_dashboard")
os.environ["BENCH_DATABASE_URL"] = URL  # read by _common (and the two loaders) at import
os.environ["BENCH_TELEMETRY_DATABASE_URL"] = URL

import psycopg  # noqa: E402

import runs_list  # noqa: E402  (its run loader)
import telemetry as telemetry_bench  # noqa: E402  (its event generator)
from _common import (DATABASE_URL, _libpq_url, fresh_app, ms, named_checks_verdict, percentile,  # noqa: E402
                     print_header, teardown)

RUNS, EVENTS = 1_000_000, 10_000_000
N_TENANTS = 1000
WINDOWS = ("24h", "7d", "30d")
PAGE_WARMUP, PAGE_REPS, ROUNDS = 3, 20, 3
SQL_REPS = 10
TARGET_MS = 100.0
RUN_FUNCS = ("run_kpis", "top_failing_types", "top_failing_tenants")


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}")


def load(app, conn, scale: float) -> dict:
    from tenantpilot import run_rollup, telemetry
    from tenantpilot.extensions import db

    out = {}
    n_events, n_runs = max(1000, int(EVENTS * scale)), max(1000, int(RUNS * scale))
    registry = app.extensions["tenantpilot"].registry
    families = dict(registry.event_families)
    optypes = sorted(registry.operation_types)
    began = time.perf_counter()
    now = telemetry.utcnow()
    ws = telemetry_bench.seed_workspaces(conn, now - timedelta(days=telemetry_bench.DAYS))
    conn.commit()
    gen = telemetry_bench.generate(conn, n_events, now, families, optypes, ws["full"], telemetry_bench.SEED)
    log(f"{ws['workspaces']:,} workspaces, {ws['tenants']:,} tenants; generated {n_events:,} events in {gen:.1f} s")
    vac = telemetry_bench.vacuum_analyze(conn)
    with app.app_context():
        t = time.perf_counter()
        telemetry.rebuild_rollups()
        db.session.remove()
    log(f"VACUUM ANALYZE + CHECKPOINT {vac:.1f} s; telemetry.rebuild_rollups() {time.perf_counter() - t:.1f} s")
    tenants = [r[0] for r in conn.execute("SELECT id FROM tenants ORDER BY id LIMIT %s", (N_TENANTS,))]
    workspace_id = conn.execute("SELECT workspace_id FROM tenants WHERE id = %s", (tenants[0],)).fetchone()[0]
    conn.commit()
    runs_list.N_RUNS, runs_list.OFFBOARD_BEFORE = n_runs, n_runs // 20
    t = time.perf_counter()
    c = runs_list.load(tenants, workspace_id)
    log(f"generated {c['runs']:,} runs + {c['tenant_rows']:,} tenant rows in {time.perf_counter() - t:.1f} s "
        f"(incl. VACUUM ANALYZE); outcome=failed {c['failed']:,}; last 24h {c['last_24h']:,}")
    with app.app_context():
        t = time.perf_counter()
        run_rollup.rebuild()
        out["rebuild_s"] = time.perf_counter() - t
        db.session.remove()
    conn.autocommit = True
    conn.execute("ANALYZE operation_runs_hourly")
    conn.execute("ANALYZE operation_run_failed_tenants_hourly")
    conn.execute("CHECKPOINT")
    conn.autocommit = False
    rows = conn.execute("SELECT (SELECT count(*) FROM operation_runs_hourly), "
                        "(SELECT count(*) FROM operation_run_failed_tenants_hourly), "
                        "(SELECT count(*) FROM product_usage_events), (SELECT count(*) FROM operation_runs), "
                        "(SELECT count(*) FROM operation_run_tenants WHERE status = 'failed')").fetchone()
    conn.commit()
    out.update(rollup_rows=rows[0], tenant_rollup_rows=rows[1], events=rows[2], runs=rows[3], failed_rows=rows[4],
               generate_s=time.perf_counter() - began)
    log(f"run_rollup.rebuild() {out['rebuild_s']:.1f} s → {rows[0]:,} hourly run rows, {rows[1]:,} hourly "
        f"failed-tenant rows (from {rows[4]:,} failed tenant rows)")
    return out


def check_exact(app, checks: list) -> None:
    from tenantpilot import dashboard
    from tenantpilot.extensions import db
    from tenantpilot.timeutil import utcnow

    with app.app_context():
        for window in WINDOWS:
            since = utcnow() - dashboard.WINDOWS[window].delta
            for limit in (5, 100_000):  # the shown top 5, and every failing type and tenant
                new = [dashboard.run_kpis(since), dashboard.top_failing_types(since, limit),
                       dashboard.top_failing_tenants(since, limit)]
                old = [dashboard.raw_run_kpis(since), dashboard.raw_top_failing_types(since, limit),
                       dashboard.raw_top_failing_tenants(since, limit)]
                checks.append((f"{window} exact (limit {limit})", new == old))
            k = new[0]
            log(f"{window}: started {k['started']:,}, succeeded {k['succeeded']:,}, failed {k['failed']:,}, active "
                f"{k['active']}; {len(new[1])} failing types, {len(new[2]):,} failing tenants — exact: "
                f"{all(ok for name, ok in checks[-2:])}")
            db.session.rollback()


def time_functions(app) -> dict:
    from tenantpilot import dashboard
    from tenantpilot.extensions import db
    from tenantpilot.timeutil import utcnow

    out = {}
    with app.app_context():
        for window in WINDOWS:
            delta = dashboard.WINDOWS[window].delta
            for name in RUN_FUNCS:
                for kind, fn in (("rollup", getattr(dashboard, name)), ("raw", getattr(dashboard, f"raw_{name}"))):
                    samples = []
                    for i in range(SQL_REPS + 2):
                        t0 = time.perf_counter()
                        fn(utcnow() - delta)
                        if i >= 2:  # two warm-ups
                            samples.append(time.perf_counter() - t0)
                        db.session.rollback()
                    out[(window, name, kind)] = statistics.median(samples)
    return out


def time_pages(app, client) -> dict:
    """{(window, kind): (median, p95, [round medians])} for the page with the rollup and
    with the raw queries swapped in."""
    from tenantpilot import dashboard

    shipped = {name: getattr(dashboard, name) for name in RUN_FUNCS}
    raw = {name: getattr(dashboard, f"raw_{name}") for name in RUN_FUNCS}
    out = {}

    def get(url):
        r = client.get(url)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url} answered {r.status_code}")

    rounds: dict = {}
    try:
        for _ in range(ROUNDS):  # interleaved, so drift on the shared box hits both alike
            for window in WINDOWS:
                url = f"/system/?window={window}"
                for kind, funcs in (("rollup", shipped), ("raw", raw)):
                    for name, fn in funcs.items():
                        setattr(dashboard, name, fn)
                    for _ in range(PAGE_WARMUP):
                        get(url)
                    samples = []
                    for _ in range(PAGE_REPS):
                        t0 = time.perf_counter()
                        get(url)
                        samples.append(time.perf_counter() - t0)
                    rounds.setdefault((window, kind), []).append(samples)
    finally:
        for name, fn in shipped.items():
            setattr(dashboard, name, fn)
    for key, per_round in rounds.items():
        every = [s for r in per_round for s in r]
        out[key] = (statistics.median(every), percentile(every, 95), [statistics.median(r) for r in per_round])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply 1M runs and 10M events by this (e.g. 0.01 while developing)")
    args = parser.parse_args()
    began = time.monotonic()
    sys.stdout.reconfigure(line_buffering=True)
    n_runs, n_events = int(RUNS * args.scale), int(EVENTS * args.scale)
    print_header(f"bench/dashboard.py — GET /system/?window=… at {n_runs:,} runs and {n_events:,} telemetry events",
                 f"page with the runs rollup vs with the raw run queries, {ROUNDS} rounds × ({PAGE_WARMUP} warm-ups + "
                 f"{PAGE_REPS} timed) per window and kind, Flask test client, signed in")
    app, _config = fresh_app()
    conn = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=False)
    checks: list[tuple[str, bool]] = []
    try:
        from tenantpilot.testing import Factory, login

        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '64MB'")
        data = load(app, conn, args.scale)
        print(f"data: {data['runs']:,} runs, {data['events']:,} events; generated and indexed in "
              f"{data['generate_s']:.0f} s; rollup backfill (run_rollup.rebuild) {data['rebuild_s']:.1f} s")
        print()
        check_exact(app, checks)
        funcs = time_functions(app)
        user = Factory(app).platform_user(email="bench-dashboard@example.test")
        client = app.test_client()
        resp = login(client, "system", user.email, "platform-pass-123")
        if resp.status_code != 302:
            raise RuntimeError(f"login answered {resp.status_code}")
        pages = time_pages(app, client)
        print()
        print("run figures alone, median of", SQL_REPS, "calls (ms): rollup | raw")
        for window in WINDOWS:
            print(f"  {window:>4}: " + "; ".join(
                f"{name} {ms(funcs[(window, name, 'rollup')])} | {ms(funcs[(window, name, 'raw')])}"
                for name in RUN_FUNCS))
        print()
        print(f"GET /system/?window=… whole page, {ROUNDS * PAGE_REPS} timed requests per cell (ms):")
        print(f"  {'window':>6}  {'kind':>6}  {'median':>8}  {'p95':>8}  round medians (spread)")
        for window in WINDOWS:
            for kind in ("rollup", "raw"):
                med, p95, per_round = pages[(window, kind)]
                print(f"  {window:>6}  {kind:>6}  {ms(med):>8}  {ms(p95):>8}  "
                      f"{', '.join(ms(m) for m in per_round)} ({ms(min(per_round))}-{ms(max(per_round))})")
        print()
        met = all(pages[(w, "rollup")][1] * 1000 <= TARGET_MS for w in WINDOWS)
        print(f"target: page p95 ≤ {TARGET_MS:.0f} ms for every window at {n_runs:,} runs + {n_events:,} events: "
              f"{'met' if met else 'NOT met'}" + ("" if args.scale == 1 else " (scaled run: not the target's size)"))
        print("# noisy: a shared 2-core box; compare the two kinds within this run, not across runs.")
        return named_checks_verdict(checks, began)
    finally:
        conn.close()
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
