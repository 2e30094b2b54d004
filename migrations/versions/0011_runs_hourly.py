"""Hourly rollup of completed runs for the dashboard (tenantpilot/run_rollup.py), backfilled

Revision ID: 0011_runs_hourly
Revises: 0009_approval_requests

The upgrade counts the existing ledger into the new tables (the same statements as
``run_rollup.rebuild``), so the dashboard is exact as soon as the release phase's
``flask db upgrade`` has run: about a second per 100k runs on PostgreSQL. Runs completed
by processes of the previous release while it ran are not in it: run
``flask runs rebuild-rollup`` once the new release is up if old workers kept running.
"""
from alembic import op
import sqlalchemy as sa

revision = "0011_runs_hourly"
down_revision = "0010_artifacts"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "operation_runs_hourly",
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("tenants_failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket_start", "type", "outcome", name=op.f("pk_operation_runs_hourly")),
    )
    op.create_table(
        "operation_run_failed_tenants_hourly",
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket_start", "tenant_id", name=op.f("pk_operation_run_failed_tenants_hourly")),
    )
    # Backfill from the ledger's completed runs, bucketed by the hour they were created.
    if op.get_bind().dialect.name == "postgresql":
        hour, params = "date_trunc('hour', r.created_at)", {}
    else:  # SQLAlchemy's SQLite DateTime text format (a parameter: ':00' is no bind name)
        hour, params = "strftime(:fmt, r.created_at)", {"fmt": "%Y-%m-%d %H:00:00.000000"}
    op.execute(sa.text(f"""
        INSERT INTO operation_runs_hourly (bucket_start, type, outcome, runs, tenants_failed)
        SELECT {hour}, r.type, r.outcome, count(*), coalesce(sum(r.tenants_failed), 0)
        FROM operation_runs r WHERE r.status = 'completed'
        GROUP BY {hour}, r.type, r.outcome""").bindparams(**params))
    op.execute(sa.text(f"""
        INSERT INTO operation_run_failed_tenants_hourly (bucket_start, tenant_id, failed)
        SELECT {hour}, rt.tenant_id, count(*)
        FROM operation_runs r JOIN operation_run_tenants rt ON rt.run_id = r.id
        WHERE r.status = 'completed' AND rt.status = 'failed'
        GROUP BY {hour}, rt.tenant_id""").bindparams(**params))


def downgrade():
    op.drop_table("operation_run_failed_tenants_hourly")
    op.drop_table("operation_runs_hourly")
