"""live migration records

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-06 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nova's os-migrations record, plus what the two agents exchange through the
    # controller (the destination's ports) and what the API asked (abort, force).
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("source_compute", sa.String(255), nullable=True),
        sa.Column("source_node", sa.String(255), nullable=True),
        sa.Column("source_node_id", sa.String(36), nullable=True),
        sa.Column("dest_compute", sa.String(255), nullable=True),
        sa.Column("dest_node", sa.String(255), nullable=True),
        sa.Column("dest_node_id", sa.String(36), nullable=True, index=True),
        sa.Column("dest_host", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("migration_type", sa.String(32), nullable=False),
        sa.Column("old_instance_type_id", sa.Integer(), nullable=True),
        sa.Column("new_instance_type_id", sa.Integer(), nullable=True),
        sa.Column("memory_total", sa.BigInteger(), nullable=True),
        sa.Column("memory_processed", sa.BigInteger(), nullable=True),
        sa.Column("memory_remaining", sa.BigInteger(), nullable=True),
        sa.Column("disk_total", sa.BigInteger(), nullable=True),
        sa.Column("disk_processed", sa.BigInteger(), nullable=True),
        sa.Column("disk_remaining", sa.BigInteger(), nullable=True),
        sa.Column("nbd_port", sa.Integer(), nullable=True),
        sa.Column("incoming_port", sa.Integer(), nullable=True),
        sa.Column("force_complete", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column("abort_requested", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("migrations")
