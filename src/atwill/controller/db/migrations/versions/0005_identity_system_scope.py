"""identity: system-scope role assignments

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 21:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_role_assignments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("role_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_system_role_assignments_user_id_users"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], ondelete="CASCADE",
                                name="fk_system_role_assignments_role_id_roles"),
        sa.PrimaryKeyConstraint("id", name="pk_system_role_assignments"),
        sa.UniqueConstraint("user_id", "role_id", name="uq_system_role_assignments_user_id"),
    )
    op.create_index("ix_system_role_assignments_user_id", "system_role_assignments",
                    ["user_id"])
    # keystone-manage bootstrap gives its admin the admin role on the system; a cloud
    # bootstrapped before system scope existed gets it here (a fresh one in bootstrap).
    op.execute(sa.text(
        "INSERT INTO system_role_assignments (user_id, role_id) "
        "SELECT users.id, roles.id FROM users, roles "
        "WHERE users.name = 'admin' AND users.domain_id = 'default' "
        "AND roles.name = 'admin'"))


def downgrade() -> None:
    op.drop_index("ix_system_role_assignments_user_id", table_name="system_role_assignments")
    op.drop_table("system_role_assignments")
