"""index operation_run_tenants by (tenant_id, run_id) for the runs list's tenant filter

Revision ID: 0003_tenant_run_idx
Revises: 0002_accounting
"""
from alembic import op

revision = "0003_tenant_run_idx"
down_revision = "0002_accounting"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_operation_run_tenants_tenant_run", "operation_run_tenants", ["tenant_id", "run_id"])


def downgrade():
    op.drop_index("ix_operation_run_tenants_tenant_run", table_name="operation_run_tenants")
