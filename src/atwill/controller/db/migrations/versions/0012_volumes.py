"""volumes — block storage (volumes, snapshots, types, attachments, volume quotas)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 01:00:00.000000
"""

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=True)]


def upgrade() -> None:
    types = op.create_table(
        "volume_types",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("extra_specs", sa.JSON(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_types")),
        sa.UniqueConstraint("name", name=op.f("uq_volume_types_name")),
    )
    # As Cinder's own migration: every cloud has the default type.
    op.bulk_insert(types, [{
        "id": str(uuid.uuid4()), "name": "__DEFAULT__", "description": "Default Volume Type",
        "is_public": True, "extra_specs": {},
        "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)}])
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("availability_zone", sa.String(length=255), nullable=False),
        sa.Column("volume_type_id", sa.String(length=36), nullable=False),
        sa.Column("snapshot_id", sa.String(length=36), nullable=True),
        sa.Column("source_volid", sa.String(length=36), nullable=True),
        sa.Column("image_id", sa.String(length=36), nullable=True),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("bootable", sa.Boolean(), nullable=False),
        sa.Column("readonly", sa.Boolean(), nullable=False),
        sa.Column("multiattach", sa.Boolean(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("image_meta", sa.JSON(), nullable=False),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("node_name", sa.String(length=255), nullable=True),
        sa.Column("exports", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(["volume_type_id"], ["volume_types.id"],
                                name=op.f("fk_volumes_volume_type_id_volume_types")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
    )
    for column in ("project_id", "name", "node_id"):
        op.create_index(op.f(f"ix_volumes_{column}"), "volumes", [column])
    op.create_table(
        "volume_snapshots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"],
                                name=op.f("fk_volume_snapshots_volume_id_volumes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_snapshots")),
    )
    for column in ("volume_id", "project_id", "name"):
        op.create_index(op.f(f"ix_volume_snapshots_{column}"), "volume_snapshots", [column])
    op.create_table(
        "volume_attachments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("volume_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attach_mode", sa.String(length=8), nullable=False),
        sa.Column("connector", sa.JSON(), nullable=True),
        sa.Column("node_id", sa.String(length=36), nullable=True),
        sa.Column("node_name", sa.String(length=255), nullable=True),
        sa.Column("device", sa.String(length=255), nullable=True),
        sa.Column("boot_index", sa.Integer(), nullable=True),
        sa.Column("delete_on_termination", sa.Boolean(), nullable=False),
        sa.Column("tag", sa.String(length=60), nullable=True),
        sa.Column("attached_at", sa.DateTime(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(["volume_id"], ["volumes.id"],
                                name=op.f("fk_volume_attachments_volume_id_volumes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_attachments")),
    )
    for column in ("volume_id", "instance_id", "project_id", "node_id"):
        op.create_index(op.f(f"ix_volume_attachments_{column}"), "volume_attachments",
                        [column])
    op.create_table(
        "volume_quotas",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=300), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "resource", name=op.f("pk_volume_quotas")),
    )
    op.create_table(
        "volume_quota_classes",
        sa.Column("class_name", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=300), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("class_name", "resource",
                                name=op.f("pk_volume_quota_classes")),
    )


def downgrade() -> None:
    op.drop_table("volume_quota_classes")
    op.drop_table("volume_quotas")
    for column in ("volume_id", "instance_id", "project_id", "node_id"):
        op.drop_index(op.f(f"ix_volume_attachments_{column}"), table_name="volume_attachments")
    op.drop_table("volume_attachments")
    for column in ("volume_id", "project_id", "name"):
        op.drop_index(op.f(f"ix_volume_snapshots_{column}"), table_name="volume_snapshots")
    op.drop_table("volume_snapshots")
    for column in ("project_id", "name", "node_id"):
        op.drop_index(op.f(f"ix_volumes_{column}"), table_name="volumes")
    op.drop_table("volumes")
    op.drop_table("volume_types")
