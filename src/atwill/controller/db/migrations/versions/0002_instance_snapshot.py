"""instances.snapshot_image_id: the pending createImage of an instance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_image_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_instances_snapshot_image_id"),
                              ["snapshot_image_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_snapshot_image_id"))
        batch_op.drop_column("snapshot_image_id")
