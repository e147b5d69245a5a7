"""servers

Revision ID: 0006
Revises:  lock state (locked, locked_by, locked_reason) and server tags:0005
Create Date: 2026-12-05 21:30:00.000000
"""

import sqlalchemy as sa  # noqa: F401  (used once the schema change is written)
from alembic import op  # noqa: F401

revision = "0006"
down_revision = " lock state (locked, locked_by, locked_reason) and server tags:0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
