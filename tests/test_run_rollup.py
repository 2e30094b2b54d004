"""The dashboard's hourly runs rollup (run_rollup.py): the run figures of /system read from
it equal the same figures counted over the raw ledger, for every window, with runs created
across hour boundaries and at the window's edges, completed hours later, still active,
cancelled, aborted and completed at creation; ``rebuild`` recounts the same rows the ledger
kept; the migration's backfill counts an existing ledger."""
import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tenantpilot import dashboard, run_rollup, runs
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import OperationRun, OperationRunFailedTenantHourly, OperationRunHourly
from tenantpilot.runs import Scope
from tenantpilot.testing import signed_in
from tests.helpers import count

TYPES = ("alpha.sync", "beta.report", "gamma.audit")
OPS = ("system", "ops@example.test", "ops-password-1")


def _ledger(app, clock, tenant_ids, ws_id, now):
    """Runs through the real ledger, each created at a chosen time and settled later."""
    rng = random.Random(17)
    windows = [w.delta for w in dashboard.WINDOWS.values()]
    created = []
    for delta in windows:  # around each window's start: inside and outside its partial first hour
        edge = now - delta
        for offset in (-61, -1, 0, 1, 59, 60, 61, 119):
            created.append(edge + timedelta(minutes=offset, seconds=rng.randint(0, 59)))
    hour = run_rollup.floor_hour(now)
    created += [hour - timedelta(hours=h) for h in (1, 2, 30, 200)]  # exactly on an hour
    created += [hour - timedelta(hours=h, microseconds=1) for h in (3, 31)]  # the last instant of one
    created += [now - timedelta(minutes=rng.randint(1, 45 * 24 * 60)) for _ in range(40)]
    created += [now - timedelta(minutes=m) for m in (1, 5, 20)]  # recent: some stay active
    made = {"completed": 0, "active": 0}
    with app.app_context():
        for i, when in enumerate(sorted(created)):
            clock.set(when)
            type_ = TYPES[i % len(TYPES)]
            tenants = rng.sample(tenant_ids, rng.randint(1, len(tenant_ids)))
            skipped = {tenants[0]: "tenant_paused"} if i % 9 == 0 else None
            if i % 13 == 0:
                skipped = {t: "tenant_paused" for t in tenants}  # nothing to do: completes at creation
            run, how, _pending = runs.create(operation_type=type_, scope=Scope("workspace", ws_id), identity_inputs={"i": i},
                                   tenants=[(t, ws_id) for t in tenants], skipped=skipped,
                                   initiator=Actor.system("Rollup test"), context={"operation_label": type_.upper()},
                                   batch_size=50)
            assert how == "created"
            run_id = run.id
            if run.status == "completed":
                made["completed"] += 1
                continue
            todo = [t for t in tenants if t not in (skipped or {})]
            # Settle hours later (often in a later hour than creation), but never after now.
            finish = min(now, when + timedelta(minutes=rng.randint(1, 300)))
            clock.set(finish)
            stays_active = now - when < timedelta(minutes=30)
            mode = rng.random()
            if not stays_active and mode < 0.1:
                runs.abort(run_id, "queue_unreachable", "The queue could not be reached.")
            elif not stays_active and mode < 0.2:
                runs.mark_running(run_id)
                assert runs.claim_tenant(run_id, todo[0])
                runs.finish_tenant(run_id, todo[0], status="failed", reason_code="provider_timeout")
                runs.cancel(run_id)
                runs.account(run_id)
            else:
                runs.mark_running(run_id)
                last = todo if not stays_active else todo[:-1]  # an active run keeps a tenant pending
                for n, t in enumerate(last):
                    assert runs.claim_tenant(run_id, t)
                    runs.finish_tenant(run_id, t, status="failed" if rng.random() < 0.4 else "succeeded",
                                       reason_code="provider_timeout")
                    if not (stays_active and n == len(last) - 1):  # leave one settled row unaccounted
                        runs.account(run_id)
            status = db.session.get(OperationRun, run_id).status
            made["completed" if status == "completed" else "active"] += 1
            db.session.commit()
    clock.set(now)
    return made


def _figures(since, raw: bool, limit: int):
    d = dashboard
    if raw:
        return d.raw_run_kpis(since), d.raw_top_failing_types(since, limit), d.raw_top_failing_tenants(since, limit)
    return d.run_kpis(since), d.top_failing_types(since, limit), d.top_failing_tenants(since, limit)


@pytest.fixture
def ledger(app, factory, clock):
    ws = factory.workspace("Rollup WS")
    tenant_ids = [factory.tenant(ws).id for _ in range(7)]
    now = run_rollup.floor_hour(clock()) + timedelta(minutes=37, seconds=12, microseconds=345)
    made = _ledger(app, clock, tenant_ids, ws.id, now)
    assert made["completed"] > 40 and made["active"] >= 2  # the ledger holds what the test is about
    return now


@pytest.mark.parametrize("window", list(dashboard.WINDOWS))
def test_dashboard_figures_equal_the_raw_ledger_counts(app, ledger, clock, window):
    since = ledger - dashboard.WINDOWS[window].delta
    with app.app_context():
        for limit in (5, 1000):  # the shown top 5, and every type and tenant with a failure
            new, old = _figures(since, False, limit), _figures(since, True, limit)
            assert new == old, (window, limit)
        kpis, types, tenants = _figures(since, False, 1000)
        assert kpis["started"] > 0 and kpis["failed"] > 0 and kpis["active"] >= 2
        assert types and tenants  # failures are in every window
        # The runs of the window's partial first hour are part of it: an edge run exists.
        first_full = run_rollup.ceil_hour(since)
        assert db.session.scalar(select(OperationRun.id).where(
            OperationRun.created_at >= since, OperationRun.created_at < first_full).limit(1)) is not None


def test_the_page_shows_the_exact_figures_per_window(app, ledger, factory):
    factory.platform_user(email=OPS[1], password=OPS[2])
    client = signed_in(app, *OPS)
    for window in dashboard.WINDOWS:
        with app.app_context():
            kpis = dashboard.raw_run_kpis(ledger - dashboard.WINDOWS[window].delta)
            tenants = dashboard.raw_top_failing_tenants(ledger - dashboard.WINDOWS[window].delta)
        resp = client.get(f"/system/?window={window}")
        assert resp.status_code == 200
        body = resp.get_data(as_text=True)
        for key in ("started", "succeeded", "failed", "partially_succeeded", "active"):
            assert f'data-kpi="{key}">{kpis[key]}<' in body, (window, key, kpis[key])
        shown = re.findall(r'data-offender-tenant="(\d+)">.*?<span data-count>(\d+)</span>', body, re.S)
        assert [(int(t), int(n)) for t, n in shown] == [(r["tenant_id"], r["failed"]) for r in tenants], window


def _rollup():
    return (sorted(db.session.execute(select(OperationRunHourly.bucket_start, OperationRunHourly.type,
                                             OperationRunHourly.outcome, OperationRunHourly.runs,
                                             OperationRunHourly.tenants_failed)).all()),
            sorted(db.session.execute(select(OperationRunFailedTenantHourly.bucket_start,
                                             OperationRunFailedTenantHourly.tenant_id,
                                             OperationRunFailedTenantHourly.failed)).all()))


def test_rebuild_recounts_what_the_ledger_kept(app, ledger):
    completed = count(app, OperationRun, OperationRun.status == "completed")
    with app.app_context():
        kept = _rollup()
        assert sum(r.runs for r in kept[0]) == completed
        assert kept[1]  # failed tenants were folded in
        run_rollup.rebuild()
        assert _rollup() == kept


def test_the_migration_backfills_an_existing_ledger(app, ledger):
    """Upgrading to 0011 over a ledger that already has runs counts them in (the release
    phase's `flask db upgrade`): the same rows the ledger would have kept."""
    import os

    from alembic import command

    from tenantpilot.testing import _migration_dirs

    with app.app_context():
        kept = _rollup()
        db.session.remove()  # alembic runs on a connection of its own
        config = app.extensions["migrate"].migrate.get_config()
        config.set_main_option("version_locations", os.pathsep.join(_migration_dirs(app)))
        command.downgrade(config, "0011_runs_hourly-1")  # drops the two tables
        db.session.remove()
        command.upgrade(config, "heads")
        db.session.remove()
        assert _rollup() == kept and kept[0] and kept[1]


def test_the_cli_rebuilds_the_rollup(app, ledger):
    with app.app_context():
        kept = _rollup()
        db.session.execute(OperationRunHourly.__table__.delete())
        db.session.commit()
        assert _rollup()[0] == []
    result = app.test_cli_runner().invoke(args=["runs", "rebuild-rollup"])
    assert result.exit_code == 0, result.output
    assert "Run rollup rebuilt." in result.output
    with app.app_context():
        assert _rollup() == kept
