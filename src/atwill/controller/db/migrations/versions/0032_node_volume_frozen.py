"""node volume frozen: a storage node's cinder-volume can be frozen (Cinder's freeze/thaw)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 00:30:00.000000

PUT /v3/os-services/freeze (and thaw) of Block Storage: a frozen backend refuses the
management operations Cinder refuses on it (volume delete, snapshot create and delete) and
takes no new volumes; nodes.volume_frozen is Cinder's services.frozen.
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both engines (as 0030: no batch copy of `nodes`).
    op.add_column("nodes", sa.Column("volume_frozen", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE nodes DROP COLUMN volume_frozen")  # natively, as 0023
    else:
        op.drop_column("nodes", "volume_frozen")
