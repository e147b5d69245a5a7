"""peer clouds and their mappings

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=False),
        sa.Column("ca_hash", sa.String(80), nullable=False),
        sa.Column("credential", sa.String(128), nullable=False),
        sa.Column("inbound_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "peer_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("peer_name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "peer_mappings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("peer_id", sa.String(36), sa.ForeignKey("peers.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("remote_project", sa.String(255), nullable=False),
        sa.Column("remote_user", sa.String(255), nullable=False),
        sa.Column("local_project_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("peer_id", "remote_project", "remote_user",
                            name="uq_peer_mappings_rule"),
    )
    op.create_table(
        "peer_images",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("peer_id", sa.String(36), sa.ForeignKey("peers.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("checksum", sa.String(32), nullable=True),
        sa.Column("os_hash_algo", sa.String(64), nullable=True),
        sa.Column("os_hash_value", sa.String(128), nullable=True),
        sa.Column("disk_format", sa.String(32), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("min_ram", sa.Integer(), nullable=False),
        sa.Column("min_disk", sa.Integer(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("fetch_token", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("peer_images")
    op.drop_table("peer_mappings")
    op.drop_table("peer_tokens")
    op.drop_table("peers")
