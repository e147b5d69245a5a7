"""node volume service: a storage node's cinder-volume enabled flag of its own

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 21:30:00.000000

Before, the Block Storage os-services and volume placement read the node's compute flags
(enabled, disabled_reason), so disabling nova-compute also stopped the node taking
volumes. Cinder keeps the two apart: cinder-volume is enabled or disabled on its own
(PUT /v3/os-services/{enable,disable,disable-log-reason}). A node disabled before the
upgrade (then the only way to keep volumes off it) starts with its volume service
disabled too, for the same reason, so the upgrade puts no new volume on it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both engines: a batch copy on SQLite would drop and
    # recreate `nodes`, and with foreign keys on take the rows that reference it along.
    op.add_column("nodes", sa.Column("volume_disabled", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("nodes", sa.Column("volume_disabled_reason", sa.Text(), nullable=True))
    op.execute("UPDATE nodes SET volume_disabled = true, volume_disabled_reason = "
               "disabled_reason WHERE enabled = false")


def downgrade() -> None:
    for column in ("volume_disabled_reason", "volume_disabled"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE nodes DROP COLUMN {column}")  # natively, as 0023
        else:
            op.drop_column("nodes", column)
