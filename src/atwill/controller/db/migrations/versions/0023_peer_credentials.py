"""peer credentials kept sealed; peer mappings keyed on domain + name

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 08:00:00.000000

A peer's credential and the tokens peer images are fetched with were kept in plaintext
(review finding). They are now sealed with a key derived from the cluster CA's key, which
a migration cannot reach (it has the database only): the plaintext ones are dropped, and
a peer paired before this migration answers 503 'pair again' until it is paired again.

Mappings named a peer's project and user without a domain, so a same-named project or
user of another domain at the peer matched (review finding). Existing rules are kept
for the names' default domain ('Default'), the only one the CLI let an admin mean.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

log = logging.getLogger("atwill.migrations")
OLD_RULE = ["peer_id", "remote_project", "remote_user"]
NEW_RULE = ["peer_id", "remote_project_domain", "remote_project", "remote_user_domain",
            "remote_user"]


def upgrade() -> None:
    paired = op.get_bind().execute(sa.text("SELECT count(*) FROM peers")).scalar() or 0
    if paired:
        log.warning("migration 0023: the plaintext credentials of %d peer cloud(s) were "
                    "dropped; pair them again ('atwill peer remove', then 'peer add')", paired)
    op.add_column("peers", sa.Column("credential_sealed", sa.Text(), nullable=True))
    _drop_column("peers", "credential")
    with op.batch_alter_table("peer_images") as batch:
        batch.add_column(sa.Column("fetch_token_sealed", sa.Text(), nullable=True))
        batch.drop_column("fetch_token")
    with op.batch_alter_table("peer_mappings") as batch:
        for name in ("remote_project_domain", "remote_user_domain"):
            batch.add_column(sa.Column(name, sa.String(255), nullable=False,
                                       server_default="Default"))
        batch.drop_constraint("uq_peer_mappings_rule", type_="unique")
        batch.create_unique_constraint("uq_peer_mappings_rule", NEW_RULE)


def downgrade() -> None:
    # A rule for another domain cannot be said without its domain: it would map the
    # same names in every domain, so it goes.
    op.execute("DELETE FROM peer_mappings WHERE remote_project_domain <> 'Default' "
               "OR remote_user_domain <> 'Default'")
    with op.batch_alter_table("peer_mappings") as batch:
        batch.drop_constraint("uq_peer_mappings_rule", type_="unique")
        batch.create_unique_constraint("uq_peer_mappings_rule", OLD_RULE)
        batch.drop_column("remote_user_domain")
        batch.drop_column("remote_project_domain")
    # Sealed secrets are not put back in plaintext: such peers must be paired again.
    with op.batch_alter_table("peer_images") as batch:
        batch.add_column(sa.Column("fetch_token", sa.Text(), nullable=True))
        batch.drop_column("fetch_token_sealed")
    op.add_column("peers", sa.Column("credential", sa.String(128), nullable=False,
                                     server_default=""))
    _drop_column("peers", "credential_sealed")


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Natively (SQLite 3.35+): a batch copy drops and recreates the table, and with
        # foreign keys on, dropping `peers` deletes every mapping and image of its peers.
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)
