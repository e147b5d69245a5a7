"""NBD export and migration stream identities

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 08:00:00.000000
"""

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
