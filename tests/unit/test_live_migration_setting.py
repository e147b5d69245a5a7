"""Live migration is on by default; an operator may turn it off (setting live_migration),
and a request is then refused before anything is read or written."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from atwill.config import Settings
from atwill.controller.compute.server_migrations import run_live
from atwill.core.errors import BadRequest
from atwill.core.microversion import Version
from atwill.core.policy import Credentials

ADMIN = Credentials("admin", frozenset({"admin", "member", "reader"}), project_id="P",
                    is_admin_project=True)
BODY = {"host": None, "block_migration": "auto"}


def test_live_migration_is_on_by_default() -> None:
    assert Settings().live_migration is True


def test_turned_off_it_is_refused_before_the_database_is_touched() -> None:
    ctl = SimpleNamespace(settings=Settings(live_migration=False))
    inst = SimpleNamespace(id="i", project_id="P")
    with pytest.raises(BadRequest, match="live migration is turned off on this cloud"):
        run_live(None, ctl, inst, BODY, "req-1", ADMIN, Version.parse("2.30"))  # type: ignore[arg-type]
