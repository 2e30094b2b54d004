"""product usage telemetry: events, hourly rollup, latest event per workspace

Revision ID: 0005_product_usage
Revises: 0004_provider_connections
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_product_usage"
down_revision = "0004_provider_connections"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "product_usage_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("event_name", sa.String(length=120), nullable=False),
        sa.Column("feature_area", sa.String(length=60), nullable=False),
        sa.Column("subject_type", sa.String(length=60), nullable=True),
        sa.Column("subject_id", sa.String(length=120), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_product_usage_events_workspace_id_workspaces")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_product_usage_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_usage_events")),
    )
    op.create_index("ix_product_usage_events_occurred", "product_usage_events", ["occurred_at"])
    op.create_index("ix_product_usage_events_event_occurred", "product_usage_events", ["event_name", "occurred_at"])
    op.create_index("ix_product_usage_events_ws_tenant_occurred", "product_usage_events",
                    ["workspace_id", "tenant_id", "occurred_at"])
    op.create_table(
        "product_usage_hourly",
        sa.Column("bucket_start", sa.DateTime(), nullable=False),
        sa.Column("event_name", sa.String(length=120), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket_start", "event_name", name=op.f("pk_product_usage_hourly")),
    )
    op.create_table(
        "product_usage_workspaces",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_product_usage_workspaces_workspace_id_workspaces")),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_product_usage_workspaces")),
    )
    op.create_index("ix_product_usage_workspaces_last", "product_usage_workspaces", ["last_event_at"])


def downgrade():
    op.drop_index("ix_product_usage_workspaces_last", table_name="product_usage_workspaces")
    op.drop_table("product_usage_workspaces")
    op.drop_table("product_usage_hourly")
    for name in ("ix_product_usage_events_ws_tenant_occurred", "ix_product_usage_events_event_occurred",
                 "ix_product_usage_events_occurred"):
        op.drop_index(name, table_name="product_usage_events")
    op.drop_table("product_usage_events")
