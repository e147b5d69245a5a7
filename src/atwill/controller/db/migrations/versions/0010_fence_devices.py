"""cluster: fence devices per node (agents, options, secrets encrypted), fencing levels

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa  # noqa: F401  (used once the schema change is written)
from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
