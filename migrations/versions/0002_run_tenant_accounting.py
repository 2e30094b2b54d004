"""run tenant accounting: settled rows are folded into run counters in batches

Revision ID: 0002_accounting
Revises: 0001_core
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_accounting"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("operation_run_tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accounted", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    # Rows settled before this revision were accounted by the old per-tenant path.
    op.execute("UPDATE operation_run_tenants SET accounted = true WHERE status <> 'pending' AND status <> 'running'")
    with op.batch_alter_table("operation_run_tenants", schema=None) as batch_op:
        batch_op.create_index("ix_operation_run_tenants_unaccounted", ["run_id"], unique=False,
                              postgresql_where=sa.text("NOT accounted"), sqlite_where=sa.text("NOT accounted"))


def downgrade():
    with op.batch_alter_table("operation_run_tenants", schema=None) as batch_op:
        batch_op.drop_index("ix_operation_run_tenants_unaccounted", postgresql_where=sa.text("NOT accounted"),
                            sqlite_where=sa.text("NOT accounted"))
        batch_op.drop_column("accounted")
