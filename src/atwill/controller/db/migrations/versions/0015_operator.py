"""operator — join-token aggregates and the usage event log

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("join_tokens", schema=None) as batch_op:
        # The host aggregates (by name) a node joining with the token is put into.
        batch_op.add_column(sa.Column("aggregates", sa.JSON(), nullable=False,
                                      server_default="[]"))
    # Billing's record of each server's lifecycle: appended, never updated, so that an
    # exporter can follow it by id (the ids only grow).
    op.create_table(
        "usage_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False, index=True),
        sa.Column("instance_name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False, index=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("flavor_id", sa.String(255), nullable=True),
        sa.Column("flavor_name", sa.String(255), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("previous_state", sa.String(32), nullable=True),
        sa.Column("node_name", sa.String(255), nullable=True),
        sa.Column("previous_node", sa.String(255), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("usage_events")
    with op.batch_alter_table("join_tokens", schema=None) as batch_op:
        batch_op.drop_column("aggregates")
