"""servers: who locked an instance and why (2.73), and server tags (2.26)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        # Existing locks were all taken before the owner/admin distinction: None means
        # "unknown", which Nova treats as unlockable by the owner too.
        batch_op.add_column(sa.Column("locked_by", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("locked_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False,
                                      server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("locked_reason")
        batch_op.drop_column("locked_by")
