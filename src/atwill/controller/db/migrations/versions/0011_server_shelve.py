"""servers: shelved state and other server fields

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa  # noqa: F401  (used once the schema change is written)
from alembic import op  # noqa: F401

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
