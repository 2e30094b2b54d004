"""review_packs: the review pack table (own branch)

Revision ID: review_packs_0001
Revises:
Depends on: 0001_core (workspaces, tenants, users, operation_runs)
"""
from alembic import op
import sqlalchemy as sa

revision = "review_packs_0001"
down_revision = None
branch_labels = ("review_packs",)
depends_on = "0001_core"


def _fk(col, target):
    return sa.ForeignKeyConstraint([col], [f"{target}.id"], name=op.f(f"fk_review_packs_{col}_{target}"))


def upgrade():
    op.create_table(
        "review_packs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("operation_run_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("include_operations", sa.Boolean(), nullable=False),
        sa.Column("include_pii", sa.Boolean(), nullable=False),
        sa.Column("data_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("row_counts", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.String(length=60), nullable=True),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("generated_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        _fk("workspace_id", "workspaces"),
        _fk("tenant_id", "tenants"),
        _fk("operation_run_id", "operation_runs"),
        _fk("requested_by_user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_packs")),
        sa.UniqueConstraint("operation_run_id", name=op.f("uq_review_packs_operation_run_id")),
    )
    op.create_index("ix_review_packs_tenant_id", "review_packs", ["tenant_id", "id"])
    op.create_index("ix_review_packs_reuse", "review_packs",
                    ["tenant_id", "include_operations", "include_pii", "status", "id"])
    op.create_index("ix_review_packs_expires_at", "review_packs", ["expires_at"])


def downgrade():
    op.drop_table("review_packs")
