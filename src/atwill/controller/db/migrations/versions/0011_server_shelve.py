"""servers: the node a create asked for (forced or requested), and shelving

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        # The node named at create (az ZONE:HOST:NODE or 2.74's host/hypervisor_hostname),
        # kept so a reschedule or an unshelve asks for the same one.
        batch_op.add_column(sa.Column("requested_host", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("force_host", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        # A shelved server's snapshot (booted again by unshelve, then deleted) and when.
        batch_op.add_column(sa.Column("shelved_image_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("shelved_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("shelved_at")
        batch_op.drop_column("shelved_image_id")
        batch_op.drop_column("force_host")
        batch_op.drop_column("requested_host")
