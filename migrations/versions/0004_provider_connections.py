"""provider connections: how the platform reaches each tenant at its vendor

Revision ID: 0004_provider_connections
Revises: 0003_tenant_run_idx
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_provider_connections"
down_revision = "0003_tenant_run_idx"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "provider_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_ref", sa.String(length=300), nullable=True),
        sa.Column("health", sa.String(length=20), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(), nullable=True),
        sa.Column("last_error_code", sa.String(length=60), nullable=True),
        sa.Column("last_error_message", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_provider_connections_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_connections")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_provider_connections_tenant_id")),
    )


def downgrade():
    op.drop_table("provider_connections")
