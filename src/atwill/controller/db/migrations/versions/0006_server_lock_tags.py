"""servers: who locked an instance and why (2.73), and server tags (2.26)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 21:30:00.000000
"""

import sqlalchemy as sa  # noqa: F401  (used once the schema change is written)
from alembic import op  # noqa: F401

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
