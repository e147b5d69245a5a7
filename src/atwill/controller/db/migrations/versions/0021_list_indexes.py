"""indexes for lists filtered and paged in SQL

Each list reads one page as a keyset range in its default order (see
controller/sqlpage.py); these indexes let that range start where the marker is
instead of after a scan of every row of the table.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 08:00:00.000000
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Neutron lists: a project's own rows, or every row for an admin, by (created_at, id).
NEUTRON = ("networks", "subnets", "ports", "routers", "floating_ips", "security_groups",
           "security_group_rules")
# (name, table, columns)
INDEXES: list[tuple[str, str, list[str]]] = [
    *[(f"ix_{t}_list_project", t, ["project_id", "created_at", "id"]) for t in NEUTRON],
    *[(f"ix_{t}_list_all", t, ["created_at", "id"]) for t in NEUTRON],
    ("ix_ports_list_network", "ports", ["network_id", "created_at", "id"]),
    ("ix_instances_list_project", "instances", ["project_id", "deleted", "created_at", "id"]),
    ("ix_instances_list_all", "instances", ["deleted", "created_at", "id"]),
    ("ix_volumes_list_project", "volumes", ["project_id", "created_at", "id"]),
    ("ix_volume_snapshots_list_project", "volume_snapshots", ["project_id", "created_at",
                                                              "id"]),
    ("ix_nodes_list", "nodes", ["created_at", "name", "id"]),
    ("ix_images_list", "images", ["created_at", "id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
