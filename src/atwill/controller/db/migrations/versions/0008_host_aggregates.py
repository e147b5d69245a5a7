"""compute: host aggregates, their hosts and metadata

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aggregates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregates")),
        sa.UniqueConstraint("name", name=op.f("uq_aggregates_name")),
        sa.UniqueConstraint("uuid", name=op.f("uq_aggregates_uuid")),
    )
    for table, column in (("aggregate_hosts", "host"), ("aggregate_metadata", "key")):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("aggregate_id", sa.Integer(), nullable=False),
            sa.Column(column, sa.String(length=255), nullable=False),
            *([sa.Column("value", sa.String(length=255), nullable=False)]
              if table == "aggregate_metadata" else []),
            sa.ForeignKeyConstraint(["aggregate_id"], ["aggregates.id"], ondelete="CASCADE",
                                    name=op.f(f"fk_{table}_aggregate_id_aggregates")),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("aggregate_id", column,
                                name=op.f(f"uq_{table}_aggregate_id")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_aggregate_id"), ["aggregate_id"],
                                  unique=False)
    with op.batch_alter_table("aggregate_hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aggregate_hosts_host"), ["host"], unique=False)


def downgrade() -> None:
    op.drop_table("aggregate_metadata")
    op.drop_table("aggregate_hosts")
    op.drop_table("aggregates")
