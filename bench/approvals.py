"""Approvals page latency: GET /system/ops/approvals with 10,000 requests in history.

Data (bulk-inserted, fixed random seed): 10,000 approval_requests of the canary runbook,
ids increasing with created_at over the last 30 days, requested by 5 operators and
decided by 3 others; statuses ~60% approved (each with a run id), 15% rejected, 15%
expired, 8% cancelled, 2% pending (the newest); then VACUUM ANALYZE.

Cases: the pending tab (the default), "all", the approved tab, a deep keyset page of
"all", and one pending request's page (which also runs a fresh re-count, the canary's
preflight over the seeded tenants). Each case: 5 warm-up requests, then REPS rounds
(``--reps``, default 5) of ROUND timed GETs (``--round``, default 20) through the Flask
test client, signed in (real login form) as a platform user holding every capability.
Printed per case: the median and the p95 of each round, as their median over the rounds
and spread (min–max), and every round's median. ``--requests`` sizes the history
(default 10,000; the deep page starts in its middle).

Run from the repository root with the venv active:
    python bench/approvals.py [--reps 5] [--round 20] [--requests 10000]
Backends as every bench script (bench/_common.py; BENCH_DATABASE_URL, BENCH_REDIS_URL).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta

from _common import ms, percentile, print_header, setup, teardown

N_REQUESTS = 10_000
N_TENANTS = 200
WARMUP = 5
REPEATS = 5
ROUND = 20
RUNBOOK = "ops.pipeline_canary"
STATUSES = [("approved", 0.60), ("rejected", 0.15), ("expired", 0.15), ("cancelled", 0.08)]  # rest: pending


def load(app) -> dict:
    from sqlalchemy import insert, select, text

    from tenantpilot import audit
    from tenantpilot.actors import Actor
    from tenantpilot.extensions import db
    from tenantpilot.models import ApprovalRequest, OperationRun, PlatformUser
    from tenantpilot.testing import Factory
    from tenantpilot.timeutil import utcnow

    rng = random.Random(42)
    f = Factory(app)
    requesters = [f.platform_user(email=f"requester{i}@example.test") for i in range(5)]
    deciders = [f.platform_user(email=f"decider{i}@example.test") for i in range(3)]
    with app.app_context():
        scope = {"kind": "all_tenants", "workspace_id": None, "tenant_id": None}
        figures = {"affected_count": N_TENANTS, "total_count": N_TENANTS, "estimated_tenants": N_TENANTS}
        requester = db.session.get(PlatformUser, requesters[0].id)
        event = audit.record("platform.ops.runbooks.preflight", actor=Actor.platform(requester),
                             target=("runbook", RUNBOOK, "Pipeline canary"), summary="bench preflight",
                             metadata={"runbook": RUNBOOK, "scope": scope, "result": figures})
        # one run that every approved request points at (the list shows the id; a real
        # ledger would have one each, which the list page never reads)
        run_id = db.session.execute(insert(OperationRun).values(
            type=RUNBOOK, status="completed", outcome="succeeded", run_identity_hash="bench-approvals",
            summary_counts={}, failure_summary=[], context={"operation_label": "Pipeline canary"},
            tenants_total=0, tenants_done=0, tenants_failed=0, tenants_skipped=0, cancel_requested=False,
            created_at=utcnow()).returning(OperationRun.id)).scalar_one()
        now = utcnow()
        start = now - timedelta(days=30)
        step = timedelta(days=30) / N_REQUESTS
        rows = []
        for i in range(N_REQUESTS):
            created = start + i * step
            newest = i >= N_REQUESTS - int(N_REQUESTS * 0.02)
            status = "pending"
            if not newest:
                r, acc = rng.random() / 0.98, 0.0
                status = STATUSES[-1][0]
                for name, share in STATUSES:
                    acc += share / 0.98
                    if r < acc:
                        status = name
                        break
            decided = status in ("approved", "rejected", "cancelled", "expired")
            rows.append({
                "runbook_key": RUNBOOK, "scope": scope, "preflight_audit_id": event.id, "preflight_result": figures,
                "reason_code": "DATA_REPAIR", "reason_text": f"bench request {i}",
                "requester_id": rng.choice(requesters).id, "status": status, "created_at": created,
                "expires_at": (now + timedelta(minutes=60)) if newest else created + timedelta(minutes=60),
                "decided_at": created + timedelta(minutes=rng.randint(1, 59)) if decided else None,
                "decided_by_id": rng.choice(deciders).id if status in ("approved", "rejected") else None,
                "decision_reason": "bench: not now" if status == "rejected" else None,
                "run_id": run_id if status == "approved" else None, "source": "system_ui"})
        t = time.perf_counter()
        db.session.execute(insert(ApprovalRequest), rows)
        db.session.commit()
        loaded = time.perf_counter() - t
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE approval_requests"))
        counts = dict(db.session.execute(select(ApprovalRequest.status, text("count(*)"))
                                         .group_by(ApprovalRequest.status)).all())
        pending_id = db.session.scalar(select(ApprovalRequest.id).where(ApprovalRequest.status == "pending")
                                       .order_by(ApprovalRequest.id.desc()).limit(1))
    return {"loaded_s": loaded, "counts": counts, "pending_id": pending_id}


def time_case(client, url: str, marker: str, repeats: int, per_round: int) -> dict:
    for _ in range(WARMUP):
        resp = client.get(url)
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered {resp.status_code}")
    rounds, rows = [], 0
    for _ in range(repeats):
        samples = []
        for _ in range(per_round):
            t0 = time.perf_counter()
            resp = client.get(url)
            samples.append(time.perf_counter() - t0)
            assert resp.status_code == 200
        rounds.append(samples)
        rows = resp.get_data(as_text=True).count(marker)
    return {"rounds": [statistics.median(r) for r in rounds], "p95s": [percentile(r, 95) for r in rounds],
            "rows": rows}


def spread(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} ({ms(min(values))}–{ms(max(values))})"


def main() -> int:
    global N_REQUESTS
    from tenantpilot.testing import Factory, login

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=REPEATS, help=f"rounds per case (default {REPEATS})")
    parser.add_argument("--round", type=int, default=ROUND, help=f"timed requests per round (default {ROUND})")
    parser.add_argument("--requests", type=int, default=N_REQUESTS,
                        help=f"approval requests in the history (default {N_REQUESTS:,})")
    args = parser.parse_args()
    N_REQUESTS, reps, per_round = args.requests, max(1, args.reps), args.round
    print_header(f"bench/approvals.py — approvals page latency at {N_REQUESTS:,} requests",
                 f"GET /system/ops/approvals, {WARMUP} warm-up + {reps}×{per_round} timed requests per case, "
                 "Flask test client")
    app, _config, _tenants = setup(N_TENANTS)
    try:
        c = load(app)
        print(f"loaded {sum(c['counts'].values()):,} approval requests in {c['loaded_s']:.1f} s: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(c["counts"].items(), key=lambda kv: -kv[1])))
        print()
        user = Factory(app).platform_user(email="bench-ops@example.test")
        client = app.test_client()
        if login(client, "system", user.email, "platform-pass-123").status_code != 302:
            raise RuntimeError("login failed")
        base = "/system/ops/approvals"
        cases = [
            ("pending tab (default)", base, "<tr data-approval="),
            ("all", f"{base}?status=all", "<tr data-approval="),
            ("approved tab", f"{base}?status=approved", "<tr data-approval="),
            ("all, deep page (before=middle)", f"{base}?status=all&before={N_REQUESTS // 2}", "<tr data-approval="),
            ("one pending request (+ re-count)", f"{base}/{c['pending_id']}", 'data-figure="affected-now"'),
        ]
        print(f"ms per request: median over {reps} round(s) of {per_round} of each round's figure (min–max)")
        print(f"{'case':<36} {'rows':>4} {'median ms':>22} {'p95 ms':>22}   round medians ms")
        for label, url, marker in cases:
            r = time_case(client, url, marker, reps, per_round)
            print(f"{label:<36} {r['rows']:>4} {spread(r['rounds']):>22} {spread(r['p95s']):>22}   "
                  f"{' '.join(ms(x) for x in r['rounds'])}", flush=True)
        return 0
    finally:
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
