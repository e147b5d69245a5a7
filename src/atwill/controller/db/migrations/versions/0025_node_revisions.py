"""node revisions: a change wakes only the nodes it concerns

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 12:00:00.000000

The cluster revision stays the one clock every change moves; everyone_at is the clock of
the last change that concerned every node, and node_revisions the clock of the last one
that concerned a given node. A node's revision is the later of the two, so it is the
same number space as the old global revision: everyone_at starts at the current
revision, and an agent of the previous release, which sends the global revision it last
saw, is answered exactly as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cluster_revision", sa.Column("everyone_at", sa.Integer(), nullable=False,
                                                server_default="0"))
    op.execute("UPDATE cluster_revision SET everyone_at = revision")
    op.create_table(
        "node_revisions",
        sa.Column("node_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    # Each worker asks now and then which nodes moved past the clock it last saw.
    op.create_index("ix_node_revisions_revision", "node_revisions", ["revision"])


def downgrade() -> None:
    op.drop_index("ix_node_revisions_revision", table_name="node_revisions")
    op.drop_table("node_revisions")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE cluster_revision DROP COLUMN everyone_at")
    else:
        op.drop_column("cluster_revision", "everyone_at")
