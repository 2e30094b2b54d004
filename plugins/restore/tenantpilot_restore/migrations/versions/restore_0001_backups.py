"""restore: policies, backup sets and items, restore runs and their items (own branch)

Revision ID: restore_0001
Revises:
Depends on: 0001_core (tenants, users, operation_runs)
"""
from alembic import op
import sqlalchemy as sa

revision = "restore_0001"
down_revision = None
branch_labels = ("restore",)
depends_on = "0001_core"


def _fk(table, col, target):
    return sa.ForeignKeyConstraint([col], [f"{target}.id"], name=op.f(f"fk_{table}_{col}_{target}"))


def upgrade():
    op.create_table(
        "restore_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=60), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        _fk("restore_policies", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_policies")),
        sa.UniqueConstraint("tenant_id", "policy_type", "external_id", name="uq_restore_policies_key"),
    )
    op.create_table(
        "backup_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("operation_run_id", sa.Integer(), nullable=True),
        sa.Column("created_by_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _fk("backup_sets", "tenant_id", "tenants"),
        _fk("backup_sets", "operation_run_id", "operation_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_sets")),
        sa.UniqueConstraint("operation_run_id", name=op.f("uq_backup_sets_operation_run_id")),
    )
    op.create_index("ix_backup_sets_tenant_id", "backup_sets", ["tenant_id", "id"])
    op.create_table(
        "backup_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backup_set_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=60), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _fk("backup_items", "backup_set_id", "backup_sets"),
        _fk("backup_items", "tenant_id", "tenants"),
        _fk("backup_items", "policy_id", "restore_policies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_items")),
    )
    op.create_index("ix_backup_items_set_id", "backup_items", ["backup_set_id", "id"])
    op.create_table(
        "restore_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("backup_set_id", sa.Integer(), nullable=False),
        sa.Column("operation_run_id", sa.Integer(), nullable=True),
        sa.Column("rerun_of_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _fk("restore_runs", "tenant_id", "tenants"),
        _fk("restore_runs", "backup_set_id", "backup_sets"),
        _fk("restore_runs", "operation_run_id", "operation_runs"),
        _fk("restore_runs", "rerun_of_id", "restore_runs"),
        _fk("restore_runs", "requested_by_user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_runs")),
        sa.UniqueConstraint("operation_run_id", name=op.f("uq_restore_runs_operation_run_id")),
    )
    op.create_index("ix_restore_runs_tenant_id", "restore_runs", ["tenant_id", "id"])
    op.create_table(
        "restore_run_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("restore_run_id", sa.Integer(), nullable=False),
        sa.Column("backup_item_id", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("preview_action", sa.String(length=20), nullable=False),
        sa.Column("preview_changes", sa.JSON(), nullable=False),
        sa.Column("result", sa.String(length=20), nullable=True),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        _fk("restore_run_items", "restore_run_id", "restore_runs"),
        _fk("restore_run_items", "backup_item_id", "backup_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_run_items")),
    )
    op.create_index("ix_restore_run_items_run_id", "restore_run_items", ["restore_run_id", "id"])


def downgrade():
    for table in ("restore_run_items", "restore_runs", "backup_items", "backup_sets", "restore_policies"):
        op.drop_table(table)
