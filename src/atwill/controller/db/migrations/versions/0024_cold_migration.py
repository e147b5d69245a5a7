"""cold migration and resize: each migration's two flavors, and when it finished

A resize (or a cold migration, a resize to the same flavor) changes the instance's flavor
once the destination has its disk; revert gives the old one back, and confirm releases
the source's claim of it: the record keeps both flavors as they were snapshotted. The
time it finished (VERIFY_RESIZE) starts Nova's resize_confirm_window.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("old_flavor", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("new_flavor", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
        batch_op.drop_column("new_flavor")
        batch_op.drop_column("old_flavor")
