"""Artifact store: blobs every process reaches (tenantpilot.artifacts)

Revision ID: 0010_artifacts
Revises: 0009_approval_requests
"""
from alembic import op
import sqlalchemy as sa

revision = "0010_artifacts"
down_revision = "0009_approval_requests"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("backend", sa.String(length=10), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
    )
    op.create_index("ix_artifacts_owner", "artifacts", ["owner"])
    op.create_index("ix_artifacts_expires_at", "artifacts", ["expires_at"])
    op.create_table(
        "artifact_chunks",
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["artifact_id"], ["artifacts.id"], ondelete="CASCADE",
                                name=op.f("fk_artifact_chunks_artifact_id_artifacts")),
        sa.PrimaryKeyConstraint("artifact_id", "seq", name=op.f("pk_artifact_chunks")),
    )


def downgrade():
    op.drop_table("artifact_chunks")
    op.drop_index("ix_artifacts_expires_at", table_name="artifacts")
    op.drop_index("ix_artifacts_owner", table_name="artifacts")
    op.drop_table("artifacts")
