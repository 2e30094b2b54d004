"""The "Findings lifecycle backfill" runbook on crafted data: what it repairs, exact
counts, preflight == what then changes, idempotence, SLA configuration, scopes, and that
it works set-based."""
import random
from collections import defaultdict

import pytest
from sqlalchemy import event, insert

from findings_helpers import T0, add, changed_ids, days, finding, snapshot
from tenantpilot_findings import plugin
from tenantpilot_findings.backfill import preflight
from tenantpilot_findings.models import Finding
from tests.helpers import run_row, tenant_counts
from tenantpilot.sdk import Actor, Scope, db, start_operation

KEY = "findings.lifecycle.backfill"


@pytest.fixture
def app(make_app):
    return make_app(plugins=[plugin])


def run(app, drain, scope):
    with app.app_context():
        result = start_operation(KEY, scope=scope, actor=Actor.system("Test"), source="api")
        assert result.status == "started", result.message
        run_id = result.run.id
    drain(app)
    return run_row(app, run_id)


def check_preflight(app, scope):
    with app.app_context():
        return preflight(scope)


def crafted(app, factory):
    """One tenant with one example of every repair (and of every non-repair), plus a
    second tenant sharing a drift fingerprint (groups are per tenant)."""
    ws = factory.workspace()
    a, b = factory.tenant(ws), factory.tenant(ws)
    f = {}
    (f["open_high"], f["ack_critical"], f["fixed_medium"], f["clean_low"], f["in_progress_no_due"],
     f["resolved_no_due"], f["d_old"], f["d_newest"], f["d_legacy_unseen"], f["tie_1"], f["tie_2"],
     f["fixed_drift"], f["open_drift_alone"], f["nofp_1"], f["nofp_2"], f["other_tenant_drift"]) = add(
        app,
        finding(a.id, status="open", severity="high"),
        finding(a.id, status="acknowledged", severity="critical", first_seen_at=T0 - days(10)),
        finding(a.id, status="fixed", severity="medium", resolved_at=T0 + days(1)),
        finding(a.id, status="new", severity="low", first_seen_at=T0, last_seen_at=T0 + days(2),
                due_at=T0 + days(90)),
        finding(a.id, status="in_progress", severity="medium", first_seen_at=T0, last_seen_at=T0),
        finding(a.id, status="resolved", severity="low", first_seen_at=T0, last_seen_at=T0, resolved_at=T0),
        # Drift group "fp-x": seen 5 days ago, 1 day ago (the survivor), and a legacy copy whose
        # last_seen is missing (created 10 days ago).
        finding(a.id, type="drift", fingerprint="fp-x", status="new", severity="high",
                first_seen_at=T0 - days(30), last_seen_at=T0 - days(5), due_at=T0 - days(23)),
        finding(a.id, type="drift", fingerprint="fp-x", status="triaged", severity="high",
                first_seen_at=T0 - days(30), last_seen_at=T0 - days(1), due_at=T0 - days(23)),
        finding(a.id, type="drift", fingerprint="fp-x", status="open", severity="high",
                created_at=T0 - days(10)),
        # Drift group "fp-tie": same last_seen, the higher id survives.
        finding(a.id, type="drift", fingerprint="fp-tie", status="new", severity="low", first_seen_at=T0,
                last_seen_at=T0, due_at=T0 + days(90)),
        finding(a.id, type="drift", fingerprint="fp-tie", status="new", severity="low", first_seen_at=T0,
                last_seen_at=T0, due_at=T0 + days(90)),
        # Drift group "fp-y": a fixed copy is not open, so the open one is alone: no consolidation.
        finding(a.id, type="drift", fingerprint="fp-y", status="fixed", severity="low", first_seen_at=T0,
                last_seen_at=T0 + days(9)),
        finding(a.id, type="drift", fingerprint="fp-y", status="new", severity="low", first_seen_at=T0,
                last_seen_at=T0, due_at=T0 + days(90)),
        # No fingerprint: never grouped.
        finding(a.id, type="drift", status="new", severity="low", first_seen_at=T0, last_seen_at=T0,
                due_at=T0 + days(90)),
        finding(a.id, type="drift", status="new", severity="low", first_seen_at=T0, last_seen_at=T0,
                due_at=T0 + days(90)),
        # Tenant B's open drift finding with the same fingerprint: not a duplicate of A's.
        finding(b.id, type="drift", fingerprint="fp-x", status="new", severity="high", first_seen_at=T0,
                last_seen_at=T0 - days(100), due_at=T0 + days(7)),
    )
    return ws, a, b, f


def test_backfill_repairs_dates_statuses_sla_and_duplicates(app, factory, drain):
    ws, a, b, f = crafted(app, factory)
    before = snapshot(app)
    assert check_preflight(app, {"kind": "single_tenant", "tenant_id": a.id}) == {
        "affected_count": 8, "total_count": 15, "estimated_tenants": 1, "scope_tenants": 1}
    assert snapshot(app) == before  # preflight wrote nothing

    done = run(app, drain, Scope("single_tenant", tenant_id=a.id))
    assert (done.status, done.outcome) == ("completed", "succeeded")
    assert done.summary_counts == {"total": 15, "processed": 15, "updated": 8, "skipped": 7, "tenants": 1,
                                   "failed": 0}
    after = snapshot(app)
    assert changed_ids(before, after) == {f["open_high"], f["ack_critical"], f["fixed_medium"],
                                          f["in_progress_no_due"], f["d_old"], f["d_legacy_unseen"], f["tie_1"],
                                          f["fixed_drift"]}

    # Lifecycle dates from created_at, legacy statuses normalized, SLA from first seen.
    r = after[f["open_high"]]
    assert (r["status"], r["first_seen_at"], r["last_seen_at"], r["due_at"]) == ("new", T0, T0, T0 + days(7))
    r = after[f["ack_critical"]]
    assert (r["status"], r["first_seen_at"], r["last_seen_at"]) == ("triaged", T0 - days(10), T0)
    assert r["due_at"] == T0 - days(10) + days(3)  # critical: 3 days after first seen
    r = after[f["fixed_medium"]]
    assert (r["status"], r["first_seen_at"], r["last_seen_at"], r["due_at"]) == ("resolved", T0, T0, None)
    assert r["resolved_at"] == T0 + days(1) and r["resolution"] is None
    assert after[f["in_progress_no_due"]]["due_at"] == T0 + days(30)
    assert after[f["resolved_no_due"]]["due_at"] is None  # resolved findings get no SLA

    # Duplicates: the most recently seen stays open, the others point at it.
    survivor = after[f["d_newest"]]
    assert (survivor["status"], survivor["resolution"], survivor["consolidated_into_id"]) == ("triaged", None, None)
    for key in ("d_old", "d_legacy_unseen"):
        r = after[f[key]]
        assert (r["status"], r["resolution"], r["consolidated_into_id"]) == (
            "resolved", "consolidated_duplicate", f["d_newest"])
        assert r["resolved_at"] is not None
    assert after[f["d_legacy_unseen"]]["last_seen_at"] == T0 - days(10)
    assert after[f["d_legacy_unseen"]]["first_seen_at"] == T0 - days(10)
    assert after[f["tie_1"]]["consolidated_into_id"] == f["tie_2"] and after[f["tie_2"]]["status"] == "new"
    # A legacy "fixed" drift finding is just normalized; the open one of its group stays open.
    assert (after[f["fixed_drift"]]["status"], after[f["fixed_drift"]]["resolution"]) == ("resolved", None)
    assert after[f["open_drift_alone"]]["status"] == "new"
    assert after[f["nofp_1"]]["status"] == after[f["nofp_2"]]["status"] == "new"
    assert after[f["other_tenant_drift"]] == before[f["other_tenant_drift"]]  # other tenant untouched

    # Idempotent: nothing left to do, and a second run changes nothing.
    assert check_preflight(app, {"kind": "single_tenant", "tenant_id": a.id})["affected_count"] == 0
    again = run(app, drain, Scope("single_tenant", tenant_id=a.id))
    assert again.summary_counts == {"total": 15, "processed": 15, "updated": 0, "skipped": 15, "tenants": 1,
                                    "failed": 0}
    assert snapshot(app) == after


def test_sla_days_are_configurable(make_app, factory, drain):
    app = make_app(plugins=[plugin], FINDINGS_SLA_DAYS={"critical": 1, "low": 60})
    f = type(factory)(app)
    t = f.tenant(f.workspace())
    crit, high, low = add(app, finding(t.id, severity="critical"), finding(t.id, severity="high"),
                          finding(t.id, severity="low"))
    run(app, drain, Scope("single_tenant", tenant_id=t.id))
    after = snapshot(app)
    assert after[crit]["due_at"] == T0 + days(1)
    assert after[high]["due_at"] == T0 + days(7)  # not overridden: the default
    assert after[low]["due_at"] == T0 + days(60)


def random_findings(tenant_ids, n, seed):
    """Interleaved legacy and clean findings of several tenants, many drift groups."""
    rng = random.Random(seed)
    rows = []
    statuses = ("new", "triaged", "in_progress", "resolved", "open", "acknowledged", "fixed")
    for i in range(n):
        kind = rng.choice(("drift", "drift", "permission", "compliance"))
        created = T0 - days(rng.randint(0, 400))
        seen = created + days(rng.randint(0, 3))  # small range: ties in last_seen happen
        rows.append(finding(
            rng.choice(tenant_ids), type=kind, severity=rng.choice(("critical", "high", "medium", "low")),
            status=rng.choice(statuses), created_at=created,
            fingerprint=f"fp-{rng.randint(0, 40)}" if kind == "drift" and rng.random() < 0.9 else None,
            first_seen_at=created if rng.random() < 0.5 else None,
            last_seen_at=seen if rng.random() < 0.5 else None,
            due_at=created + days(5) if rng.random() < 0.3 else None))
    return rows


def open_drift_groups(rows):
    groups = defaultdict(list)
    for r in rows.values():
        if r["type"] == "drift" and r["fingerprint"] and r["status"] in ("new", "triaged", "in_progress", "open",
                                                                         "acknowledged"):
            groups[(r["tenant_id"], r["fingerprint"])].append(r)
    return groups


def test_small_batches_across_interleaved_tenants_count_exactly(make_app, factory, drain):
    app = make_app(plugins=[plugin], FINDINGS_BACKFILL_BATCH_SIZE=7)
    f = type(factory)(app)
    ws = f.workspace()
    tenants = f.tenants(ws, 3)
    with app.app_context():
        db.session.execute(insert(Finding), random_findings(tenants, 600, seed=42))
        db.session.commit()
    before = snapshot(app)
    expected = check_preflight(app, {"kind": "all_tenants"})
    assert expected["total_count"] == 600 and expected["scope_tenants"] == 3
    assert 0 < expected["affected_count"] < 600 and expected["estimated_tenants"] == 3

    done = run(app, drain, Scope("all_tenants"))
    after = snapshot(app)
    counts = done.summary_counts
    assert counts["updated"] == expected["affected_count"] == len(changed_ids(before, after))
    assert counts["total"] == counts["processed"] == 600 and counts["skipped"] == 600 - counts["updated"]

    # Every open drift group of the old data now has exactly one open finding: its most
    # recently seen (tie: highest id); the others point at it.
    for (tenant_id, fp), members in open_drift_groups(before).items():
        winner = max(members, key=lambda r: (r["last_seen_at"] or r["created_at"], r["id"]))
        assert after[winner["id"]]["status"] in ("new", "triaged", "in_progress")
        for r in members:
            if r["id"] != winner["id"]:
                assert after[r["id"]]["status"] == "resolved"
                assert after[r["id"]]["consolidated_into_id"] == winner["id"]
    for r in after.values():
        assert r["first_seen_at"] and r["last_seen_at"] and r["status"] in ("new", "triaged", "in_progress",
                                                                              "resolved")
        if r["status"] != "resolved":
            assert r["due_at"] is not None
    assert check_preflight(app, {"kind": "all_tenants"})["affected_count"] == 0
    assert run(app, drain, Scope("all_tenants")).summary_counts["updated"] == 0
    assert snapshot(app) == after


def test_a_group_of_tenants_settles_each_tenant_with_its_own_counts(make_app, factory, drain):
    """Groups of 10 tenants per transaction, chunks of at most 40 findings: small tenants
    are packed together, a big one goes alone in id ranges, one has no findings; ids are
    interleaved and fingerprints shared across tenants (duplicate groups are per tenant).
    Every tenant's own result row counts exactly its own findings."""
    app = make_app(plugins=[plugin], FINDINGS_BACKFILL_BATCH_SIZE=40, TENANTPILOT_FANOUT_GROUP_SIZE=10)
    f = type(factory)(app)
    ws = f.workspace()
    tenants = f.tenants(ws, 23)
    sizes = {t: (0 if i == 0 else 150 if i == 5 else 3 + (i * 7) % 25) for i, t in enumerate(tenants)}
    rows = [r for i, t in enumerate(tenants) for r in random_findings([t], sizes[t], seed=i)]
    random.Random(3).shuffle(rows)  # interleaved ids
    with app.app_context():
        db.session.execute(insert(Finding), rows)
        db.session.commit()
    before = snapshot(app)
    expected = check_preflight(app, {"kind": "workspace", "workspace_id": ws.id})
    with app.app_context():
        engine = db.engine
    updates = []
    listener = lambda conn, cur, statement, *a: updates.append(1) if statement.startswith("UPDATE findings") else None  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        done = run(app, drain, Scope("workspace", workspace_id=ws.id))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    after = snapshot(app)
    changed = changed_ids(before, after)
    assert done.outcome == "succeeded" and done.tenants_done == 23
    assert done.summary_counts["updated"] == expected["affected_count"] == len(changed)
    results = tenant_counts(app, done.id)
    assert len(results) == 23  # one result row per tenant
    for t in tenants:
        mine = sum(1 for i in changed if before[i]["tenant_id"] == t)
        assert results[t] == ("succeeded", {"total": sizes[t], "processed": sizes[t], "updated": mine,
                                            "skipped": sizes[t] - mine}), t
    for (tenant_id, fp), members in open_drift_groups(before).items():
        winner = max(members, key=lambda r: (r["last_seen_at"] or r["created_at"], r["id"]))
        for r in members:
            if r["id"] != winner["id"]:
                assert (after[r["id"]]["status"], after[r["id"]]["consolidated_into_id"]) == ("resolved", winner["id"])
    # 2 UPDATEs per chunk: the big tenant's 4 ranges, and ~330 small findings in chunks of
    # at most 40 — far fewer than 2 per tenant.
    assert len(updates) <= 2 * (4 + 12), len(updates)
    assert run(app, drain, Scope("workspace", workspace_id=ws.id)).summary_counts["updated"] == 0


def test_scopes_follow_the_runbook_universe(app, factory, drain):
    ws, other = factory.workspace(), factory.workspace()
    active = factory.tenant(ws)
    archived = factory.tenant(ws, status="archived")
    platform_tenant = factory.tenant(ws, is_platform=True)
    elsewhere = factory.tenant(other)
    factory.tenant(other)  # no findings at all
    add(app, *[finding(t.id) for t in (active, archived, platform_tenant, elsewhere)],
        finding(active.id, status="new", first_seen_at=T0, last_seen_at=T0, due_at=T0))
    assert check_preflight(app, {"kind": "all_tenants"}) == {
        "affected_count": 2, "total_count": 3, "estimated_tenants": 2, "scope_tenants": 3}
    assert check_preflight(app, {"kind": "workspace", "workspace_id": ws.id}) == {
        "affected_count": 1, "total_count": 2, "estimated_tenants": 1, "scope_tenants": 1}
    assert check_preflight(app, {"kind": "single_tenant", "tenant_id": archived.id}) == {
        "affected_count": 0, "total_count": 0, "estimated_tenants": 0, "scope_tenants": 0}

    before = snapshot(app)
    done = run(app, drain, Scope("all_tenants"))
    assert done.summary_counts == {"total": 3, "processed": 3, "updated": 2, "skipped": 1, "tenants": 3,
                                   "failed": 0}
    after = snapshot(app)
    untouched = [i for i, r in before.items() if r["tenant_id"] in (archived.id, platform_tenant.id)]
    assert len(untouched) == 2 and all(after[i] == before[i] for i in untouched)


def test_it_is_set_based_a_few_statements_per_batch_not_one_per_row(make_app, factory, drain):
    app = make_app(plugins=[plugin], FINDINGS_BACKFILL_BATCH_SIZE=500)
    f = type(factory)(app)
    tenant = f.tenants(f.workspace(), 1)[0]
    with app.app_context():
        db.session.execute(insert(Finding), random_findings([tenant], 2000, seed=7))
        db.session.commit()
        with app.app_context():
            result = start_operation(KEY, scope=Scope("single_tenant", tenant_id=tenant), actor=Actor.system(),
                                source="api")
        engine = db.engine
    statements = []

    def count(conn, cursor, statement, *args):
        if "findings" in statement:
            statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        drain(app)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert run_row(app, result.run.id).summary_counts["total"] == 2000
    # 4 batches: 2 UPDATEs each, plus one boundary SELECT each and the opening count.
    assert statements.count("UPDATE") == 8
    assert len(statements) <= 14, statements


def test_a_large_duplicate_group_collapses_into_its_most_recent_copy(app, factory, drain):
    tenant = factory.tenant(factory.workspace())
    with app.app_context():
        db.session.execute(insert(Finding), [
            finding(tenant.id, type="drift", fingerprint="fp-same", status="open", severity="high",
                    created_at=T0 + days(i % 500) + days(0.001 * i)) for i in range(1500)])
        db.session.commit()
    assert check_preflight(app, {"kind": "single_tenant", "tenant_id": tenant.id})["affected_count"] == 1500
    done = run(app, drain, Scope("single_tenant", tenant_id=tenant.id))
    assert done.summary_counts["updated"] == 1500
    rows = snapshot(app)
    newest = max(rows.values(), key=lambda r: (r["created_at"], r["id"]))
    assert [r["id"] for r in rows.values() if r["status"] != "resolved"] == [newest["id"]]
    assert {r["consolidated_into_id"] for r in rows.values() if r["id"] != newest["id"]} == {newest["id"]}
