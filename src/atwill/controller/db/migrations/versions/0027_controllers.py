"""controllers: each controller's public URL and when it was last seen alive

Controllers sharing one database register themselves (controller/controllers.py); the
live ones are what agents fail over between, instead of a list written by hand on every
controller.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controllers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("public_url", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_controllers")),
        sa.UniqueConstraint("public_url", name=op.f("uq_controllers_public_url")),
    )
    op.create_index("ix_controllers_last_seen", "controllers", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_controllers_last_seen", table_name="controllers")
    op.drop_table("controllers")
