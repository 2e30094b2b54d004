"""findings: the findings table (own branch of the findings plugin)

Revision ID: findings_0001
Revises:
Depends on: 0001_core (tenants)

A branch of its own (branch_labels = ("findings",)): the core chain and every plugin
chain have their own head, and `flask db upgrade heads` upgrades all of them. It depends
on the core revision that creates `tenants`, so Alembic always runs that first.
"""
from alembic import op
import sqlalchemy as sa

revision = "findings_0001"
down_revision = None
branch_labels = ("findings",)
depends_on = "0001_core"


def upgrade():
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolution", sa.String(length=40), nullable=True),
        sa.Column("consolidated_into_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_findings_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["consolidated_into_id"], ["findings.id"],
                                name=op.f("fk_findings_consolidated_into_id_findings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_tenant_id_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index("ix_findings_tenant_status_id", ["tenant_id", "status", "id"], unique=False)
        batch_op.create_index("ix_findings_tenant_type_fingerprint_seen",
                              ["tenant_id", "type", "fingerprint", "last_seen_at", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_tenant_type_fingerprint_seen")
        batch_op.drop_index("ix_findings_tenant_status_id")
        batch_op.drop_index("ix_findings_tenant_id_id")
    op.drop_table("findings")
