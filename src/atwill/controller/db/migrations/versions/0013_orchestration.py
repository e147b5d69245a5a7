"""orchestration — stacks, resources, events

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _stacks() -> None:
    op.create_table(
        "orchestration_stacks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("disable_rollback", sa.Boolean(), nullable=False),
        sa.Column("timeout_mins", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_stacks")),
    )
    for column in ("name", "project_id", "parent_id"):
        op.create_index(op.f(f"ix_orchestration_stacks_{column}"), "orchestration_stacks",
                        [column])


def _resources() -> None:
    op.create_table(
        "orchestration_resources",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stack_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("physical_id", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("required_by", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["stack_id"], ["orchestration_stacks.id"], ondelete="CASCADE",
            name=op.f("fk_orchestration_resources_stack_id_orchestration_stacks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orchestration_resources")),
        sa.UniqueConstraint("stack_id", "name",
                            name=op.f("uq_orchestration_resources_stack_id")),
    )
    op.create_index(op.f("ix_orchestration_resources_stack_id"), "orchestration_resources",
                    ["stack_id"])


def _events() -> None:
    op.create_table(
        "orchestration_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("stack_id", sa.String(length=36), nullable=False),
        sa.Column("resource_name", sa.String(length=255), nullable=False),
        sa.Column("resource_type", sa.String(length=255), nullable=False),
        sa.Column("physical_resource_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stack_id"], ["orchestration_stacks.id"], ondelete="CASCADE",
            name=op.f("fk_orchestration_events_stack_id_orchestration_stacks")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_orchestration_events")),
        sa.UniqueConstraint("id", name=op.f("uq_orchestration_events_id")),
    )
    op.create_index(op.f("ix_orchestration_events_stack_id"), "orchestration_events",
                    ["stack_id"])


def upgrade() -> None:
    _stacks()
    _resources()
    _events()


def downgrade() -> None:
    op.drop_index(op.f("ix_orchestration_events_stack_id"), table_name="orchestration_events")
    op.drop_table("orchestration_events")
    op.drop_index(op.f("ix_orchestration_resources_stack_id"),
                  table_name="orchestration_resources")
    op.drop_table("orchestration_resources")
    for column in ("parent_id", "project_id", "name"):
        op.drop_index(op.f(f"ix_orchestration_stacks_{column}"),
                      table_name="orchestration_stacks")
    op.drop_table("orchestration_stacks")
