"""users: failed password counts for lockout; projects: tags

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        # Existing users start unlocked with no failures counted.
        batch_op.add_column(sa.Column("failed_auth_count", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("failed_auth_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False,
                                      server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("tags")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("failed_auth_at")
        batch_op.drop_column("failed_auth_count")
