"""controllers: each controller's own overlay peer (key, address, endpoint, API URL)

With several controllers on a WireGuard overlay, each controller is a peer of its own
(its own key and overlay address); nodes learn every live controller's peer from their
desired state, built from these columns, which only controllers write
(controller/controllers.py, core/overlay_peers.py). Null: no overlay, or a controller
not yet upgraded (then it is no peer but the one it answers as itself).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 00:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

COLUMNS = (("overlay_ip", 45), ("overlay_key", 64), ("overlay_endpoint", 300),
           ("overlay_url", 255))


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column("controllers", sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    for name, _length in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE controllers DROP COLUMN {name}")
        else:
            op.drop_column("controllers", name)
