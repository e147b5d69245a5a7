"""token_keys: the Fernet token keys in the database, sealed, shared by every controller

Before, each controller kept them in STATE_DIR/fernet-keys/ and a rotation had to be
copied by hand to the others. The files of an existing state directory are imported at
the controller's first use of the keys after this migration (controller/keys.py).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_keys",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_token_keys")),
    )


def downgrade() -> None:
    op.drop_table("token_keys")
