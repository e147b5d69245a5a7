"""A boot from volume's retry flags end with its tries (servers/builds.py).

builds.create asks the volume claims of each try but the last to raise Contended when
every storage node with room stays held, and rolls that try back to try again. A try
that succeeded early used to leave that flag set on the transaction: a later claim in it
would have raised Contended, caught by nobody (a 500). Now it gives up as before.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from atwill.config import Settings
from atwill.controller.db.models import Instance
from atwill.controller.db.session import Database
from atwill.controller.servers import builds
from atwill.controller.servers.locks import serialized
from atwill.controller.volume import placement
from atwill.core.policy import Credentials
from tests.unit.test_boot_volume_lock_order import _postgres, _spec, db, roomy, template  # noqa: F401 - fixtures


def test_a_later_claim_after_an_early_successful_try_does_not_raise(
        roomy: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(roomy)
    creds = Credentials(user_id="u", project_id="p1", roles=frozenset({"member"}))
    ctl = SimpleNamespace(settings=Settings())
    with serialized(roomy.engine.dialect.name), roomy.session() as session:
        made = builds.create(session, ctl, creds, _spec(1), "req-flags")  # type: ignore[arg-type]
        assert len(made) == 1
        placement._contended(session)  # raised Contended before: the first try's flag
        assert not placement.may_wait(session)  # its compute row is held until commit
    with roomy.session() as session:
        assert session.scalar(select(Instance.vm_state)) == "building"
