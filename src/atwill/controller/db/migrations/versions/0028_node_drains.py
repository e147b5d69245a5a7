"""node drains: a drain's intent and progress in the database, so a restart resumes it

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 18:00:00.000000

Before, a drain lived in the thread of the controller process that started it. A node
still disabled with the reason "draining" and no row here is picked up by the leader's
drain loop as a new drain.
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_drains",
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("parallel", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("runner", sa.String(length=64), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_drains")),
    )


def downgrade() -> None:
    op.drop_table("node_drains")
