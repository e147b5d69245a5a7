"""node beat order: the (epoch, seq) of a node's last ordered heartbeat applied

An agent stamps its heartbeats with (epoch, seq) (core/beat_order); the controller
applies one only when its pair is greater than the node's stored one, so a beat that a
hung controller applies late, after a newer one went to another controller, changes
nothing. NULL (every node at the upgrade, and nodes of older agents): no order yet.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 10:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both engines (as 0032 and 0033: no batch copy).
    op.add_column("nodes", sa.Column("beat_epoch", sa.BigInteger(), nullable=True))
    op.add_column("nodes", sa.Column("beat_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for column in ("beat_seq", "beat_epoch"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE nodes DROP COLUMN {column}")  # natively, as 0032
        else:
            op.drop_column("nodes", column)
