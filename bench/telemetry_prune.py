"""Telemetry retention: prune the oldest 30 days of events — batched DELETE on the plain
table (the path before issue 17, still SQLite's) vs dropping monthly partitions
(PostgreSQL since migration 0012) — side by side, in one run.

Data (generated once in SQL, fixed seed, kept in ``bench_prune_source``): ``--size``
events spread evenly over the last 120 days (±15% noise per hour), the five families of the
catalog, 200 workspaces with one tenant each. For every repetition and mode the events
table is rebuilt from that copy: the plain table of migration 0005/0007 (primary key id),
or the partitioned one of 0012 (PARTITION BY RANGE (occurred_at), one partition per month
+ DEFAULT, primary key (id, occurred_at)); both with the same four indexes, built after the
load, then VACUUM ANALYZE + CHECKPOINT and rebuild_rollups() (untimed).

Timed: ``telemetry.prune(90, now)`` — the product's own function, which deletes in batches
of 10,000 on a plain table and drops whole months + deletes the boundary month's rows on
a partitioned one; it also trims the hourly rollups the same way in both modes. Then, also
timed, the next day's prune (the cutoff one day later: what the daily job does in steady
state — both modes delete about a day of rows unless a month just ended). Reported: median
and spread (min-max) over the repetitions, rows removed, events table + indexes size
before and after (a DELETE leaves the space to VACUUM; a dropped month is gone at once).
Checked: exactly the rows older than the cutoff are gone, and the 30-day summary equals
a direct count.

Backends: PostgreSQL database ``tp_bench_partitions`` (created if missing; its public
schema is dropped and rebuilt), Redis db 5; override with BENCH_PRUNE_DATABASE_URL /
BENCH_REDIS_URL. A 2-core box shared with other work: figures are noisy.
Run from the repository root with the venv active:
    python bench/telemetry_prune.py [--size 1000000] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta

os.environ["BENCH_DATABASE_URL"] = os.environ.get(
    "BENCH_PRUNE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tp_bench_partitions")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")

import psycopg  # noqa: E402

from _common import (DATABASE_URL, _libpq_url, fresh_app, named_checks_verdict, print_header,  # noqa: E402
                     reset_schema, teardown)

DAYS_OF_DATA, RETENTION_DAYS = 120, 90  # prune removes the oldest 30 days
N_WORKSPACES = 200
SEED = 0.17
TABLE = "product_usage_events"
FAMILIES = ("product.operations.started", "product.stored_report.created", "product.review_pack.requested",
            "product.support_diagnostics.opened", "product.onboarding.checkpoint_completed")
# The indexes of the model (migrations 0005, 0007, 0012), built after each load.
INDEXES = (
    "CREATE INDEX ix_product_usage_events_occurred ON product_usage_events (occurred_at)",
    "CREATE INDEX ix_product_usage_events_event_occurred ON product_usage_events (event_name, occurred_at)",
    "CREATE INDEX ix_product_usage_events_ws_tenant_occurred ON product_usage_events "
    "(workspace_id, tenant_id, occurred_at)",
    "CREATE UNIQUE INDEX uq_product_usage_events_event_uid ON product_usage_events (event_uid, occurred_at)",
    "ALTER TABLE product_usage_events ADD CONSTRAINT fk_product_usage_events_workspace_id_workspaces "
    "FOREIGN KEY (workspace_id) REFERENCES workspaces (id)",
    "ALTER TABLE product_usage_events ADD CONSTRAINT fk_product_usage_events_tenant_id_tenants "
    "FOREIGN KEY (tenant_id) REFERENCES tenants (id)",
)

SOURCE_SQL = """
INSERT INTO workspaces (name, slug, created_at)
SELECT 'Prune workspace ' || g, 'prune-ws-' || g, %(start)s::timestamp - interval '10 days'
FROM generate_series(1, %(nws)s) AS g;
INSERT INTO tenants (workspace_id, name, external_id, status, is_platform, created_at)
SELECT id, 'Prune tenant ' || id, md5('prune-' || id), 'active', false, created_at FROM workspaces;
CREATE TABLE bench_prune_source (LIKE product_usage_events);
WITH hours AS (
  SELECT k, %(start)s::timestamp + k * interval '1 hour' AS h0, (0.85 + 0.3 * random()) AS w
  FROM generate_series(0, %(hours)s - 1) AS k
), cum AS (SELECT k, h0, sum(w) OVER (ORDER BY k) AS c_hi, sum(w) OVER () AS total FROM hours),
per_hour AS (
  SELECT k, h0, (round(%(n)s * c_hi / total) - round(%(n)s * coalesce(lag(c_hi) OVER (ORDER BY k), 0) / total))::int AS n
  FROM cum
), ev AS (
  SELECT p.h0 + random() * interval '1 hour' AS at, random() AS r_name, random() AS r_ws
  FROM per_hour p CROSS JOIN LATERAL generate_series(1, p.n) ORDER BY p.k OFFSET 0
), placed AS (
  SELECT at, (%(families)s::text[])[1 + floor(r_name * 5)::int] AS name,
         (SELECT min(id) FROM workspaces) + floor(r_ws * %(nws)s)::int AS ws FROM ev
)
INSERT INTO bench_prune_source (id, workspace_id, tenant_id, user_id, event_name, feature_area, subject_type,
                                subject_id, metadata, occurred_at, created_at, event_uid)
SELECT row_number() OVER (ORDER BY at), ws, t.id, NULL, placed.name, split_part(placed.name, '.', 2), 'tenant', t.id::text,
       '{}'::json, at, at, md5(at::text || ws)
FROM placed JOIN tenants t ON t.workspace_id = placed.ws;
ANALYZE bench_prune_source
"""


def log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def month(t, add=0):
    index = t.year * 12 + t.month - 1 + add
    return t.replace(year=index // 12, month=index % 12 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)


def load(conn, partitioned: bool, now) -> None:
    """The events table afresh from the source copy: plain or partitioned by month."""
    conn.execute(f"DROP TABLE IF EXISTS {TABLE} CASCADE")
    if partitioned:
        conn.execute(f"CREATE TABLE {TABLE} (LIKE bench_prune_source) PARTITION BY RANGE (occurred_at)")
        m, last = month(now - timedelta(days=DAYS_OF_DATA)), month(now, 3)
        while m <= last:
            conn.execute(f"CREATE TABLE {TABLE}_y{m.year:04d}m{m.month:02d} PARTITION OF {TABLE} "
                         f"FOR VALUES FROM ('{m:%Y-%m-%d}') TO ('{month(m, 1):%Y-%m-%d}')")
            m = month(m, 1)
        conn.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    else:
        conn.execute(f"CREATE TABLE {TABLE} (LIKE bench_prune_source)")
    conn.execute(f"INSERT INTO {TABLE} SELECT * FROM bench_prune_source")
    pk = "id, occurred_at" if partitioned else "id"
    conn.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_product_usage_events PRIMARY KEY ({pk})")
    for statement in INDEXES:
        conn.execute(statement)
    conn.execute(f"VACUUM ANALYZE {TABLE}")
    conn.execute("CHECKPOINT")


def size(conn) -> int:
    # pg_partition_tree lists the partitioned table and its partitions, nothing for a plain one.
    return int(conn.execute(f"SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) "
                            f"FROM pg_partition_tree('{TABLE}')), pg_total_relation_size('{TABLE}'))").fetchone()[0])


def one_rep(app, conn, partitioned: bool, now, expected_old: int, expected_next: int, checks: list) -> dict:
    from tenantpilot import telemetry
    from tenantpilot.extensions import db

    mode = "drop" if partitioned else "delete"
    load(conn, partitioned, now)
    with app.app_context():
        telemetry.rebuild_rollups()
        db.session.remove()
        before = size(conn)
        t = time.perf_counter()
        removed = telemetry.prune(RETENTION_DAYS, now=now)
        first = time.perf_counter() - t
        db.session.remove()
        after = size(conn)
        cutoff = now - timedelta(days=RETENTION_DAYS)
        left_old = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE occurred_at < %s", (cutoff,)).fetchone()[0]
        left = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM bench_prune_source").fetchone()[0]
        exact = telemetry.summary("30d", now=now) == telemetry.raw_summary("30d", now=now)
        db.session.remove()
        checks.append((f"{mode}: removed = rows older than the cutoff", removed == expected_old and left_old == 0))
        checks.append((f"{mode}: the rest intact", left == total - expected_old))
        checks.append((f"{mode}: 30d summary exact after prune", exact))
        t = time.perf_counter()
        removed_next = telemetry.prune(RETENTION_DAYS, now=now + timedelta(days=1))
        nxt = time.perf_counter() - t
        db.session.remove()
        checks.append((f"{mode}: next day removes one more day", removed_next == expected_next))
    return {"first": first, "next": nxt, "removed": removed, "removed_next": removed_next, "before": before,
            "after": after}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} s  ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="events (default 1,000,000; issue: 10,000,000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per mode (default 3)")
    args = parser.parse_args()
    began = time.monotonic()
    sys.stdout.reconfigure(line_buffering=True)
    print_header(f"bench/telemetry_prune.py — prune the oldest 30 of {DAYS_OF_DATA} days of {args.size:,} events",
                 f"batched DELETE (plain table) vs DROP of monthly partitions, {args.reps} repetition(s) each, "
                 "interleaved, each on a fresh copy")
    app, _config = fresh_app()
    conn = psycopg.connect(_libpq_url(DATABASE_URL), autocommit=False)
    checks: list[tuple[str, bool]] = []
    try:
        from tenantpilot import telemetry

        now = telemetry.utcnow()
        t = time.perf_counter()
        conn.execute("SELECT setseed(%s)", (SEED,))
        for statement in SOURCE_SQL.split(";\n"):
            conn.execute(statement, {"start": now - timedelta(days=DAYS_OF_DATA), "hours": DAYS_OF_DATA * 24,
                                     "n": args.size, "nws": N_WORKSPACES, "families": list(FAMILIES)}
                         if "%(" in statement else None)
        conn.commit()
        conn.autocommit = True  # from here on: DDL, VACUUM and plain reads
        cutoff = now - timedelta(days=RETENTION_DAYS)
        total, old, next_day = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE occurred_at < %s), "
            "count(*) FILTER (WHERE occurred_at >= %s AND occurred_at < %s) FROM bench_prune_source",
            (cutoff, cutoff, cutoff + timedelta(days=1))).fetchone()
        log(f"generated {total:,} events over {DAYS_OF_DATA} days in {time.perf_counter() - t:.1f} s; "
            f"{old:,} older than {RETENTION_DAYS} days (cutoff {cutoff:%Y-%m-%d %H:%M}), "
            f"{next_day:,} in the day after the cutoff")
        checks.append(("generated size", total == args.size))
        results = {"delete": [], "drop": []}
        for rep in range(args.reps):
            for partitioned in (False, True):  # interleaved: drift hits both modes alike
                mode = "drop" if partitioned else "delete"
                t = time.perf_counter()
                r = one_rep(app, conn, partitioned, now, old, next_day, checks)
                results[mode].append(r)
                log(f"rep {rep + 1} {mode:>6}: prune {r['first']:.2f} s ({r['removed']:,} rows), next day "
                    f"{r['next']:.2f} s ({r['removed_next']:,} rows); size {r['before'] / 2**20:,.0f} → "
                    f"{r['after'] / 2**20:,.0f} MiB (rep incl. load {time.perf_counter() - t:.0f} s)")
        print()
        print(f"prune(90) of {args.size:,} events over {DAYS_OF_DATA} days → {old:,} rows older than the cutoff; "
              f"median (min-max) of {args.reps}:")
        print(f"{'':>34} {'first prune (30 days)':>28} {'next day':>28} {'size after':>12}")
        for mode, label in (("delete", "batched DELETE, plain table"), ("drop", "DROP months, partitioned")):
            rs = results[mode]
            print(f"  {label:>32} {spread([r['first'] for r in rs]):>28} {spread([r['next'] for r in rs]):>28} "
                  f"{statistics.median(r['after'] for r in rs) / 2**20:>8,.0f} MiB")
        speedup = statistics.median(r["first"] for r in results["delete"]) / statistics.median(
            r["first"] for r in results["drop"])
        print(f"  first prune: drop is {speedup:.1f}x faster than delete (same run, noisy 2-core box)")
        print()
        return named_checks_verdict(checks, began)
    finally:
        conn.close()
        teardown(app)
        # Leave nothing big behind: the bench database's schema is rebuilt on the next run.
        reset_schema()


if __name__ == "__main__":
    sys.exit(main())
