"""onboarding: tenants of open drafts are "onboarding", not active (SPEC 3: fleet runs
take active tenants only)

Revision ID: onboarding_0002
Revises: onboarding_0001
"""
from alembic import op

revision = "onboarding_0002"
down_revision = "onboarding_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE tenants SET status = 'onboarding' WHERE status = 'active' AND id IN ("
               "SELECT tenant_id FROM onboarding_drafts WHERE tenant_id IS NOT NULL AND checkpoint <> 'activated')")


def downgrade():
    op.execute("UPDATE tenants SET status = 'active' WHERE status = 'onboarding'")
