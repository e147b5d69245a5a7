"""volumes — block storage (volumes, snapshots, types, attachments)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 01:00:00.000000
"""

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
