"""migration volume key: a live migration's volume keys come from a secret of their own

The destination's key to a volume's export (which becomes the attachment's key once the
migration completes) was derived from the migration's TLS key, which the source holds
too: the source could compute it and keep reading and writing the volume after the
server left (security review). It is derived from migrations.volume_key now, a secret
the controller gives only to the destination and the storage nodes
(core/volume_handover.py). A migration under way at the upgrade keeps its keys: its
volume_key is its tls_key (the derivation before), so its destination is not cut off.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 01:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both engines (as 0032: no batch copy).
    op.add_column("migrations", sa.Column("volume_key", sa.String(length=64), nullable=True))
    op.execute("UPDATE migrations SET volume_key = tls_key WHERE tls_key IS NOT NULL "
               "AND migration_type = 'live-migration'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE migrations DROP COLUMN volume_key")  # natively, as 0032
    else:
        op.drop_column("migrations", "volume_key")
