"""controller workers: cross-worker caches and the background leader

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 08:00:00.000000
"""

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
