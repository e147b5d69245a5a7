"""cluster: node health, fencing and evacuation records

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing nodes are taken as healthy and never fenced until the monitor looks at them.
    # Plain ALTERs, not a batch: SQLite's batch copy cannot reflect the nodes table's
    # expression indexes (0003) and would drop them.
    op.add_column("nodes", sa.Column("health", sa.String(length=16), nullable=False,
                                     server_default="up"))
    op.add_column("nodes", sa.Column("health_changed_at", sa.DateTime(), nullable=True))
    op.add_column("nodes", sa.Column("fence_state", sa.String(length=16), nullable=True))
    op.add_column("nodes", sa.Column("fence_method", sa.String(length=64), nullable=True))
    op.add_column("nodes", sa.Column("fence_message", sa.Text(), nullable=True))
    op.add_column("nodes", sa.Column("fenced_at", sa.DateTime(), nullable=True))
    op.add_column("nodes", sa.Column("heartbeat_gap_peak", sa.Float(), nullable=False,
                                     server_default="0"))
    op.create_table(
        "evacuations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("source_node_id", sa.String(length=36), nullable=False),
        sa.Column("source_node_name", sa.String(length=255), nullable=False),
        sa.Column("dest_node_name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("stop_after", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("cleaned_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evacuations")),
    )
    with op.batch_alter_table("evacuations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evacuations_instance_id"), ["instance_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_evacuations_source_node_id"),
                              ["source_node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evacuations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evacuations_source_node_id"))
        batch_op.drop_index(batch_op.f("ix_evacuations_instance_id"))
    op.drop_table("evacuations")
    for column in ("heartbeat_gap_peak", "fenced_at", "fence_message", "fence_method",
                   "fence_state", "health_changed_at", "health"):
        op.drop_column("nodes", column)
