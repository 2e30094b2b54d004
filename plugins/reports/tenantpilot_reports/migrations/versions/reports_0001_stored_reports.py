"""reports: the stored_reports table (own branch of the reports plugin)

Revision ID: reports_0001
Revises:
Depends on: 0001_core (tenants, operation_runs)
"""
from alembic import op
import sqlalchemy as sa

revision = "reports_0001"
down_revision = None
branch_labels = ("reports",)
depends_on = "0001_core"


def upgrade():
    op.create_table(
        "stored_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("report_type", sa.String(length=60), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("operation_run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_stored_reports_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["operation_run_id"], ["operation_runs.id"],
                                name=op.f("fk_stored_reports_operation_run_id_operation_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_reports")),
        sa.UniqueConstraint("operation_run_id", name=op.f("uq_stored_reports_operation_run_id")),
    )
    with op.batch_alter_table("stored_reports", schema=None) as batch_op:
        batch_op.create_index("ix_stored_reports_tenant_id_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index("ix_stored_reports_tenant_type_id", ["tenant_id", "report_type", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("stored_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_stored_reports_tenant_type_id")
        batch_op.drop_index("ix_stored_reports_tenant_id_id")
    op.drop_table("stored_reports")
