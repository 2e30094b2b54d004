"""review_packs: the pack's bytes live in the core artifact store (artifact_id)

Revision ID: review_packs_0002
Revises: review_packs_0001
Depends on: 0010_artifacts (the core artifacts table)
"""
from alembic import op
import sqlalchemy as sa

revision = "review_packs_0002"
down_revision = "review_packs_0001"
branch_labels = None
depends_on = "0010_artifacts"


def upgrade():
    # Packs written before this revision were files on one process's disk: they keep no
    # artifact, count as missing (not reused, a 410 on download) and expire as before.
    with op.batch_alter_table("review_packs") as batch:
        batch.add_column(sa.Column("artifact_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_review_packs_artifact_id_artifacts"), "artifacts", ["artifact_id"], ["id"],
                                 ondelete="SET NULL")


def downgrade():
    with op.batch_alter_table("review_packs") as batch:
        batch.drop_constraint(op.f("fk_review_packs_artifact_id_artifacts"), type_="foreignkey")
        batch.drop_column("artifact_id")
