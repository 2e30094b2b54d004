"""server-side sign-in sessions; password change timestamps

Revision ID: 0006_auth_sessions
Revises: 0005_product_usage
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_auth_sessions"
down_revision = "0005_product_usage"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("plane", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index("ix_auth_sessions_plane_user", "auth_sessions", ["plane", "user_id"])
    for table in ("users", "platform_users"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("password_changed_at", sa.DateTime(), nullable=True))


def downgrade():
    for table in ("users", "platform_users"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("password_changed_at")
    op.drop_index("ix_auth_sessions_plane_user", table_name="auth_sessions")
    op.drop_table("auth_sessions")
