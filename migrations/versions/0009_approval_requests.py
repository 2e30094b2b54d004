"""Four-eyes approval requests of runbook starts

Revision ID: 0009_approval_requests
Revises: 0008_api_tokens
"""
from alembic import op
import sqlalchemy as sa

revision = "0009_approval_requests"
down_revision = "0008_api_tokens"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("runbook_key", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("preflight_audit_id", sa.Integer(), nullable=False),
        sa.Column("preflight_result", sa.JSON(), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("reason_text", sa.String(length=500), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["requester_id"], ["platform_users.id"],
                                name=op.f("fk_approval_requests_requester_id_platform_users")),
        sa.ForeignKeyConstraint(["decided_by_id"], ["platform_users.id"],
                                name=op.f("fk_approval_requests_decided_by_id_platform_users")),
        sa.ForeignKeyConstraint(["run_id"], ["operation_runs.id"],
                                name=op.f("fk_approval_requests_run_id_operation_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    op.create_index("ix_approval_requests_status_created", "approval_requests", ["status", "created_at"])
    op.create_index(op.f("ix_approval_requests_created_at"), "approval_requests", ["created_at"])
    op.create_index(op.f("ix_approval_requests_requester_id"), "approval_requests", ["requester_id"])
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("approval_request_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_notifications_approval_request_id_approval_requests"),
                                 "approval_requests", ["approval_request_id"], ["id"])


def downgrade():
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("fk_notifications_approval_request_id_approval_requests"), type_="foreignkey")
        batch.drop_column("approval_request_id")
    op.drop_index(op.f("ix_approval_requests_requester_id"), table_name="approval_requests")
    op.drop_index(op.f("ix_approval_requests_created_at"), table_name="approval_requests")
    op.drop_index("ix_approval_requests_status_created", table_name="approval_requests")
    op.drop_table("approval_requests")
