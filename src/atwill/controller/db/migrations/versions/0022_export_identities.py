"""NBD export and migration stream identities: each live migration's TLS key

A live migration's memory stream and disk mirror run over TLS with a pre-shared key the
controller makes for that migration alone and gives only to its source and destination
(controller/servers/live_migration_agents.py). Rows of migrations made before have none:
their agents refuse to migrate without TLS.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tls_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.drop_column("tls_key")
