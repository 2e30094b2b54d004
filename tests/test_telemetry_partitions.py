"""Telemetry events partitioned by month on PostgreSQL (issue 17): partitions kept ahead
by the scheduler, retention dropping whole months and deleting only the boundary month's
rows, summaries still exact. SQLite keeps the plain table (the job is a no-op there)."""
import os
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from tenantpilot import partitions, scheduler, telemetry
from tenantpilot.extensions import db
from tenantpilot.models import ProductUsageEvent, ProductUsageHourly
from tenantpilot.testing import backends
from tenantpilot.timeutil import utcnow
from tests.helpers import built_in_plugins, count

OPS = "product.operations.started"
TABLE = "product_usage_events"
pg_only = pytest.mark.skipif(backends().database_url is None,
                             reason="declarative partitions are PostgreSQL's; SQLite keeps the plain table")


@pytest.fixture
def app(make_app, tp_template_db):
    # The partition layout of the shared PostgreSQL schema is what these tests look at,
    # and earlier tests may have changed it (a prune under a clock moved months ahead
    # drops months): start from, and leave behind, the layout the migration makes.
    tp_template_db.dirty = bool(backends().database_url)
    yield make_app(plugins=built_in_plugins())
    tp_template_db.dirty = bool(backends().database_url)


@pytest.fixture
def tenant(app, factory):
    return factory.tenant(factory.workspace("Alpha WS"), name="Alpha tenant")


def record(app, tenant, when):
    with app.app_context():
        assert telemetry.record(OPS, workspace_id=tenant.workspace_id, tenant_id=tenant.id,
                                metadata={"operation_type": "restore.execute"}, occurred_at=when)


def catalog(app) -> dict:
    """Partition name → (lower bound, rows), straight from pg_inherits / pg_class; the
    DEFAULT partition's bound is None."""
    with app.app_context():
        found = db.session.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"), {"t": TABLE}).all()
        return {name: (None if bound == "DEFAULT" else bound,
                       db.session.scalar(text(f'SELECT count(*) FROM "{name}"'))) for name, bound in found}


def month_name(t: datetime) -> str:
    return f"{TABLE}_y{t.year:04d}m{t.month:02d}"


def assert_exact(app):
    """Every window's summary (rollups) equals a direct count over the raw rows."""
    with app.app_context():
        now = utcnow()
        for window in telemetry.WINDOWS:
            assert telemetry.summary(window, now=now) == telemetry.raw_summary(window, now=now), window


# --- both backends ----------------------------------------------------------------------

def test_the_partition_job_is_scheduled_daily_and_runs_once_per_slot(app, make_app, tenant):
    job = app.extensions["tenantpilot"].registry.scheduled_jobs["telemetry.ensure_partitions"]
    assert job.interval_seconds == 86400
    other = make_app(plugins=built_in_plugins())  # a second scheduler process on the same database
    assert "telemetry.ensure_partitions" in scheduler.run_due(app)
    assert "telemetry.ensure_partitions" not in scheduler.run_due(other)
    record(app, tenant, utcnow())  # recording still works after the job
    assert count(app, ProductUsageEvent) == 1


@pytest.mark.skipif(backends().database_url is not None, reason="SQLite only: the plain table")
def test_sqlite_keeps_the_plain_table_and_the_job_does_nothing(app):
    with app.app_context():
        assert not partitions.is_partitioned(db.session.connection(), TABLE)
        assert telemetry.ensure_partitions() == []


# --- PostgreSQL: partitions -----------------------------------------------------------

@pytest.mark.usefixtures("tenant")
@pg_only
def test_the_migration_partitions_the_events_by_month_with_months_ahead_and_a_default(app):
    with app.app_context():
        kind = db.session.scalar(text("SELECT relkind FROM pg_class WHERE relname = :t"), {"t": TABLE})
        key = db.session.scalar(text("SELECT pg_get_partkeydef(CAST(:t AS regclass))"), {"t": TABLE})
    assert kind == "p" and key == "RANGE (occurred_at)"
    names = catalog(app)
    this_month = partitions.month_start(utcnow())
    for ahead in range(telemetry.PARTITIONS_AHEAD + 1):
        assert month_name(partitions.add_months(this_month, ahead)) in names
    assert names[f"{TABLE}_default"] == (None, 0)


@pg_only
def test_the_scheduler_creates_the_missing_months_ahead(app, tenant):
    this_month = partitions.month_start(utcnow())
    furthest = month_name(partitions.add_months(this_month, telemetry.PARTITIONS_AHEAD))
    with app.app_context():
        db.session.execute(text(f'DROP TABLE "{furthest}"'))  # as if the last run was months ago
        db.session.commit()
    assert furthest not in catalog(app)
    assert "telemetry.ensure_partitions" in scheduler.run_due(app)
    assert furthest in catalog(app)
    with app.app_context():
        assert telemetry.ensure_partitions() == []  # idempotent
        assert telemetry.ensure_partitions(ahead_months=telemetry.PARTITIONS_AHEAD + 2) == [
            month_name(partitions.add_months(this_month, telemetry.PARTITIONS_AHEAD + n)) for n in (1, 2)]


@pg_only
def test_rows_that_landed_in_default_move_into_their_new_month(app, tenant):
    """A month with no partition takes its rows in DEFAULT; PostgreSQL refuses a new
    partition for a range DEFAULT holds rows of, so the rows are moved into it."""
    now = utcnow()
    when = now - timedelta(days=400)  # older than any month the migration made
    month = partitions.month_start(when)
    record(app, tenant, when)
    record(app, tenant, now - timedelta(hours=2))
    assert catalog(app)[f"{TABLE}_default"] == (None, 1)
    with app.app_context():
        made = partitions.ensure_months(db.session.connection(), TABLE, "occurred_at", month, month)
        db.session.commit()
    assert made == [month_name(month)]
    names = catalog(app)
    assert names[f"{TABLE}_default"] == (None, 0)
    assert names[month_name(month)][1] == 1 and f"FROM ('{month:%Y-%m-%d} 00:00:00')" in names[month_name(month)][0]
    with app.app_context():
        assert db.session.scalars(select(ProductUsageEvent.occurred_at).order_by(ProductUsageEvent.id)).all() == [
            when, now - timedelta(hours=2)]
    record(app, tenant, when + timedelta(seconds=1))  # the month takes new rows too
    assert catalog(app)[month_name(month)][1] == 2
    assert_exact(app)


@pg_only
def test_prune_drops_whole_old_months_and_deletes_only_the_boundary_months_rows(app, tenant):
    now = utcnow()
    days = 45
    cutoff = now - timedelta(days=days)
    ages = [150, 120, 100, 80, 70, 60, 50, 46, 44, 40, 20, 10, 3, 1, 0.01]
    with app.app_context():
        oldest = partitions.month_start(now - timedelta(days=max(ages)))
        partitions.ensure_months(db.session.connection(), TABLE, "occurred_at", oldest, now)
        db.session.commit()
    for age in ages:
        record(app, tenant, now - timedelta(days=age))
    old_months = {month_name(partitions.month_start(now - timedelta(days=a))) for a in ages}
    whole_months_before = {n for n, (bound, _) in catalog(app).items()
                           if bound and n in old_months and partitions.add_months(
                               datetime.strptime(n[-8:], "y%Ym%m"), 1) <= cutoff}
    boundary = month_name(partitions.month_start(cutoff))
    assert whole_months_before and boundary not in whole_months_before
    with app.app_context():
        kept_ids = set(db.session.scalars(select(ProductUsageEvent.id).where(ProductUsageEvent.occurred_at >= cutoff)))
        assert telemetry.prune(days, now=now) == sum(1 for a in ages if a > days)
    names = catalog(app)
    assert not whole_months_before & set(names)  # dropped, not emptied
    assert boundary in names and f"{TABLE}_default" in names
    with app.app_context():
        assert set(db.session.scalars(select(ProductUsageEvent.id))) == kept_ids
        assert db.session.scalar(select(func.min(ProductUsageEvent.occurred_at))) >= cutoff
        assert db.session.scalar(select(func.min(ProductUsageHourly.bucket_start))) >= telemetry.floor_hour(cutoff)
    assert_exact(app)
    record(app, tenant, utcnow())  # inserts still work after the drop
    assert count(app, ProductUsageEvent) == len(kept_ids) + 1


@pg_only
def test_prune_deletes_old_rows_in_default_too(app, tenant):
    now = utcnow()
    record(app, tenant, now - timedelta(days=400))  # DEFAULT: no month partition that old
    record(app, tenant, now - timedelta(days=1))
    with app.app_context():
        assert telemetry.prune(90) == 1
    assert catalog(app)[f"{TABLE}_default"] == (None, 0)
    assert count(app, ProductUsageEvent) == 1
    assert_exact(app)


# --- the migration over existing rows ---------------------------------------------------

def test_the_migration_keeps_every_existing_event_and_its_id_and_downgrades(tmp_path):
    """0012 over a database that already holds events (both backends): the rows, their
    ids and the id sequence survive; on PostgreSQL they sit in their months afterwards."""
    from alembic import command

    from tenantpilot.app import create_app
    from tenantpilot.testing import _migration_dirs, _scratch_database

    with _scratch_database(tmp_path) as config:
        app = create_app({**config, "TESTING": True, "SECRET_KEY": "check"}, plugins=built_in_plugins())
        with app.app_context():
            alembic = app.extensions["migrate"].migrate.get_config()
            alembic.set_main_option("version_locations", os.pathsep.join(_migration_dirs(app)))
            command.upgrade(alembic, "0011_runs_hourly")  # the revision before 0012
            now = utcnow().replace(microsecond=0)
            db.session.execute(text("INSERT INTO workspaces (name, slug, created_at) VALUES ('W', 'w', :t)"), {"t": now})
            ws = db.session.scalar(text("SELECT id FROM workspaces"))
            db.session.execute(text("INSERT INTO tenants (workspace_id, name, external_id, status, is_platform, "
                                    "created_at) VALUES (:w, 'T', 'ext-1', 'active', false, :t)"), {"w": ws, "t": now})
            tenant_id = db.session.scalar(text("SELECT id FROM tenants"))
            whens = [now - timedelta(days=100), now - timedelta(days=5), now - timedelta(minutes=1)]
            for i, when in enumerate(whens):
                db.session.execute(text(
                    "INSERT INTO product_usage_events (workspace_id, tenant_id, event_name, feature_area, metadata, "
                    "occurred_at, created_at, event_uid) VALUES (:w, :t, :n, 'operations', '{}', :at, :at, :uid)"),
                    {"w": ws, "t": tenant_id, "n": OPS, "at": when, "uid": f"{i:032d}"})
            db.session.commit()
            before = db.session.execute(text(
                "SELECT id, occurred_at, event_uid FROM product_usage_events ORDER BY id")).all()
            db.session.remove()

            command.upgrade(alembic, "heads")
            assert db.session.execute(text(
                "SELECT id, occurred_at, event_uid FROM product_usage_events ORDER BY id")).all() == before
            conn = db.session.connection()
            if conn.dialect.name == "postgresql":
                assert partitions.is_partitioned(conn, TABLE)
                held = {p.name: db.session.scalar(text(f'SELECT count(*) FROM "{p.name}"'))
                        for p in partitions.partitions(conn, TABLE)}
                assert held[f"{TABLE}_default"] == 0
                assert {month_name(w) for w in whens} <= set(held) and sum(held.values()) == len(whens)
                this_month = partitions.month_start(now)
                assert month_name(partitions.add_months(this_month, telemetry.PARTITIONS_AHEAD)) in held
            db.session.remove()
            assert telemetry.record(OPS, workspace_id=ws, tenant_id=tenant_id, metadata={"operation_type": "x.y"})
            newest = db.session.scalar(select(func.max(ProductUsageEvent.id)))
            assert newest > before[-1][0]  # the sequence went on
            with pytest.raises(IntegrityError):  # the replay key still refuses an event twice
                db.session.execute(text(
                    "INSERT INTO product_usage_events (workspace_id, tenant_id, event_name, feature_area, metadata, "
                    "occurred_at, created_at, event_uid) VALUES (:w, :t, :n, 'operations', '{}', :at, :at, :uid)"),
                    {"w": ws, "t": tenant_id, "n": OPS, "at": whens[0], "uid": f"{0:032d}"})
            db.session.rollback()
            db.session.remove()

            command.downgrade(alembic, "0011_runs_hourly")
            assert not partitions.is_partitioned(db.session.connection(), TABLE)
            assert len(db.session.execute(text("SELECT id FROM product_usage_events")).all()) == len(whens) + 1
            db.session.remove()
            db.engine.dispose()


def test_the_ensure_partitions_command(app):
    result = app.test_cli_runner().invoke(args=["telemetry", "ensure-partitions", "--ahead", "5"])
    assert result.exit_code == 0, result.output
    if backends().database_url is None:
        assert "not partitioned (SQLite): nothing to do" in result.output
        return
    this_month = partitions.month_start(utcnow())
    new = [month_name(partitions.add_months(this_month, n)) for n in (4, 5)]
    assert result.output.strip() == f"Created 2 partitions: {', '.join(new)}."
    assert set(new) <= set(catalog(app))
    again = app.test_cli_runner().invoke(args=["telemetry", "ensure-partitions", "--ahead", "5"])
    assert again.output.strip() == "Created 0 partitions."


@pg_only
def test_prune_behind_a_long_reader_deletes_the_rows_instead_of_waiting(app, tenant, monkeypatch):
    """Dropping a month locks the parent table against writers; behind a long reader it
    gives up quickly (the recorder must not queue behind it) and the rows are deleted."""
    import psycopg

    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    now = utcnow()
    old_month = partitions.month_start(now - timedelta(days=200))
    with app.app_context():
        partitions.ensure_months(db.session.connection(), TABLE, "occurred_at", old_month, old_month)
        db.session.commit()
    record(app, tenant, now - timedelta(days=200))
    record(app, tenant, now - timedelta(days=1))
    with psycopg.connect(backends().database_url) as reader:  # a transaction still reading the table
        reader.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        with app.app_context():
            assert telemetry.prune(90) == 1
        assert month_name(old_month) in catalog(app)  # not dropped: it was deleted from instead
        assert catalog(app)[month_name(old_month)][1] == 0
        reader.rollback()
    assert count(app, ProductUsageEvent) == 1
    assert_exact(app)
    with app.app_context():  # the next prune, with nobody in the way, drops the empty month
        assert telemetry.prune(90) == 0
    assert month_name(old_month) not in catalog(app)
