"""volume export identity: each volume attachment's own NBD key

An attachment's QEMU authenticates to its export with a TLS pre-shared key made for that
attachment alone (controller/volume/desired.py), not with its node's certificate: a
guest that escapes into its QEMU reaches no other instance's volumes. Attachments made
before have none and keep the node's certificate.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("volume_attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nbd_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("volume_attachments", schema=None) as batch_op:
        batch_op.drop_column("nbd_key")
