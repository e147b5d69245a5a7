"""The leader sweeps cold-migration disk copies nobody will fetch (review finding: a
server deleted between upload and fetch left its copy on the controller for ever)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.config import Settings
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Migration
from atwill.controller.db.session import Database
from atwill.controller.servers import resize_transfers


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    db = Database(f"sqlite:///{tmp_path / 'rz.db'}")
    Base.metadata.create_all(db.engine)
    yield Controller(settings=Settings(state_dir=tmp_path), db=db, keys=None)  # type: ignore[arg-type]
    db.dispose()


def test_copies_of_migrations_that_no_longer_move_are_swept(ctl: Controller) -> None:
    directory = ctl.settings.path("cold-migrations")
    directory.mkdir(parents=True)
    with ctl.db.session() as session:
        for uuid, status in (("m-moving", "post-migrating"), ("m-done", "error")):
            session.add(Migration(uuid=uuid, instance_uuid="i", status=status,
                                  migration_type="resize"))
    for name in ("m-moving.qcow2", "m-done.qcow2", "m-gone.qcow2", ".upload-new",
                 ".upload-old"):
        (directory / name).write_bytes(b"disk")
    old = time.time() - resize_transfers.PARTIAL_MAX_AGE - 60
    os.utime(directory / ".upload-old", (old, old))
    with ctl.db.session() as session:
        removed = resize_transfers.sweep(ctl, session)
    assert sorted(removed) == [".upload-old", "m-done.qcow2", "m-gone.qcow2"]
    assert sorted(p.name for p in directory.iterdir()) == [".upload-new", "m-moving.qcow2"]


def test_the_sweeper_runs_at_most_every_minute() -> None:
    sweeper = resize_transfers.Sweeper()
    assert sweeper.due() and not sweeper.due()
