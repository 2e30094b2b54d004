"""simulated provider: local tenant state and call log (own branch)

Revision ID: simulated_0001
Revises:
Depends on: 0001_core (tenants)
"""
from alembic import op
import sqlalchemy as sa

revision = "simulated_0001"
down_revision = None
branch_labels = ("simulated",)
depends_on = "0001_core"


def upgrade():
    op.create_table(
        "sim_tenants",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("role_assignments", sa.JSON(), nullable=False),
        sa.Column("seeded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sim_tenants_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_sim_tenants")),
    )
    op.create_table(
        "sim_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=60), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sim_policies_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_policies")),
        sa.UniqueConstraint("tenant_id", "policy_type", "policy_id", name="uq_sim_policies_key"),
    )
    op.create_table(
        "sim_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("policy_type", sa.String(length=60), nullable=True),
        sa.Column("policy_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sim_calls")),
    )
    op.create_index("ix_sim_calls_tenant_id", "sim_calls", ["tenant_id", "id"])


def downgrade():
    op.drop_index("ix_sim_calls_tenant_id", table_name="sim_calls")
    op.drop_table("sim_calls")
    op.drop_table("sim_policies")
    op.drop_table("sim_tenants")
