"""onboarding: drafts of prospective tenants (own branch)

Revision ID: onboarding_0001
Revises:
Depends on: 0004_provider_connections (tenants, users, operation_runs, provider connections)
"""
from alembic import op
import sqlalchemy as sa

revision = "onboarding_0001"
down_revision = None
branch_labels = ("onboarding",)
depends_on = "0004_provider_connections"

OPEN_DRAFT = "lifecycle_state <> 'activated'"


def _fk(col, target):
    return sa.ForeignKeyConstraint([col], [f"{target}.id"], name=op.f(f"fk_onboarding_drafts_{col}_{target}"))


def upgrade():
    op.create_table(
        "onboarding_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("checkpoint", sa.String(length=40), nullable=False),
        sa.Column("lifecycle_state", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=True),
        sa.Column("verification_run_id", sa.Integer(), nullable=True),
        sa.Column("verification", sa.JSON(), nullable=True),
        sa.Column("completed", sa.JSON(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        _fk("workspace_id", "workspaces"),
        _fk("tenant_id", "tenants"),
        _fk("verification_run_id", "operation_runs"),
        _fk("created_by_user_id", "users"),
        _fk("updated_by_user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_drafts")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_onboarding_drafts_tenant_id")),
    )
    op.create_index("ix_onboarding_drafts_workspace_id", "onboarding_drafts", ["workspace_id", "id"])
    # Two open drafts (or two requests racing) can never claim the same GUID.
    op.create_index("uq_onboarding_drafts_open_guid", "onboarding_drafts", ["external_id"], unique=True,
                    postgresql_where=sa.text(OPEN_DRAFT), sqlite_where=sa.text(OPEN_DRAFT))


def downgrade():
    op.drop_table("onboarding_drafts")
