"""outbox for after-commit effects; idempotency keys of confirm forms; event ids that make spooled audit and telemetry replays idempotent

Revision ID: 0007_durable_effects
Revises: 0006_auth_sessions
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_durable_effects"
down_revision = "0006_auth_sessions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("plugin", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["operation_runs.id"], name=op.f("fk_outbox_run_id_operation_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("topic", "run_id", "plugin", name="uq_outbox_topic_run_plugin"),
    )
    op.create_index("ix_outbox_status_next", "outbox", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_outbox_run_id"), "outbox", ["run_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("result_url", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    # Spooled rows are replayed by these ids: a replay inserts a row at most once.
    for table in ("audit_logs", "product_usage_events"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("event_uid", sa.String(length=32), nullable=True))
        op.create_index(f"uq_{table}_event_uid", table, ["event_uid"], unique=True)


def downgrade():
    for table in ("audit_logs", "product_usage_events"):
        op.drop_index(f"uq_{table}_event_uid", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("event_uid")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_outbox_run_id"), table_name="outbox")
    op.drop_index("ix_outbox_status_next", table_name="outbox")
    op.drop_table("outbox")
