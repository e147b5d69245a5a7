"""nodes: free-RAM expression indexes for the scheduler's shortlist

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The same expression as the query's (atwill.controller.db.compute.FREE_RAM).
FREE_RAM = "memory_mb * 1.5 - memory_mb_used"


def upgrade() -> None:
    op.create_index("ix_nodes_free_ram_spread", "nodes",
                    [sa.text(f"({FREE_RAM}) DESC"), sa.text("name")])
    op.create_index("ix_nodes_free_ram_pack", "nodes",
                    [sa.text(f"({FREE_RAM})"), sa.text("name")])


def downgrade() -> None:
    op.drop_index("ix_nodes_free_ram_pack", table_name="nodes")
    op.drop_index("ix_nodes_free_ram_spread", table_name="nodes")
