"""cluster: fence devices per node (agents, options, secrets encrypted), fencing levels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fence_devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("node_name", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("secret_names", sa.JSON(), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fence_devices")),
        sa.UniqueConstraint("node_name", "name", name=op.f("uq_fence_devices_node_name")),
    )
    op.create_index(op.f("ix_fence_devices_node_name"), "fence_devices", ["node_name"])
    op.create_table(
        "fence_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_name", sa.String(length=255), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fence_events")),
    )
    op.create_index(op.f("ix_fence_events_node_name"), "fence_events", ["node_name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fence_events_node_name"), table_name="fence_events")
    op.drop_table("fence_events")
    op.drop_index(op.f("ix_fence_devices_node_name"), table_name="fence_devices")
    op.drop_table("fence_devices")
