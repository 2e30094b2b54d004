"""Approvals page latency: GET /system/ops/approvals with 10,000 requests in history.

Data (bulk-inserted, fixed random seed): 10,000 approval_requests of the canary runbook,
ids increasing with created_at over the last 30 days, requested by 5 operators and
decided by 3 others; statuses ~60% approved (each with a run id), 15% rejected, 15%
expired, 8% cancelled, 2% pending (the newest); then VACUUM ANALYZE.

Cases: the pending tab (the default), "all", the approved tab, a deep keyset page of
"all", and one pending request's page (which also runs a fresh re-count, the canary's
preflight over the seeded tenants). Each case: 5 warm-up requests, then REPEATS rounds of
ROUND timed GETs through the Flask test client, signed in (real login form) as a platform
user holding every capability; per case the median and p95 over all timed requests and
the median of each round (to show the spread between repetitions).

Run from the repository root with the venv active:  python bench/approvals.py
Backends as every bench script (bench/_common.py; BENCH_DATABASE_URL, BENCH_REDIS_URL).
"""
from __future__ import annotations

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


def time_case(client, url: str, marker: str) -> dict:
    for _ in range(WARMUP):
        resp = client.get(url)
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered {resp.status_code}")
    rounds, rows = [], 0
    for _ in range(REPEATS):
        samples = []
        for _ in range(ROUND):
            t0 = time.perf_counter()
            resp = client.get(url)
            samples.append(time.perf_counter() - t0)
            assert resp.status_code == 200
        rounds.append(samples)
        rows = resp.get_data(as_text=True).count(marker)
    every = [s for r in rounds for s in r]
    return {"all": every, "rounds": [statistics.median(r) for r in rounds], "rows": rows}


def main() -> int:
    from tenantpilot.testing import Factory, login

    print_header("bench/approvals.py — approvals page latency at 10,000 requests",
                 f"GET /system/ops/approvals, {WARMUP} warm-up + {REPEATS}×{ROUND} timed requests per case, "
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
        print(f"{'case':<36} {'rows':>4} {'median ms':>10} {'p95 ms':>8}   round medians ms")
        for label, url, marker in cases:
            r = time_case(client, url, marker)
            print(f"{label:<36} {r['rows']:>4} {ms(statistics.median(r['all'])):>10} "
                  f"{ms(percentile(r['all'], 95)):>8}   {' '.join(ms(x) for x in r['rounds'])}")
        return 0
    finally:
        teardown(app)


if __name__ == "__main__":
    sys.exit(main())
