"""Start-up housekeeping of the image store when several controllers share the database
and the image directory: a controller starting requeues and removes its own interrupted
uploads only, never another's in flight (found by the review: it requeued them, so
their finish failed with 409 and a second upload could start, and it deleted their
temporary files)."""

from __future__ import annotations

import uuid
from pathlib import Path

from atwill.config import Settings
from atwill.controller.context import Controller
from atwill.controller.db.image import Image
from atwill.controller.db.models import Base
from atwill.controller.db.session import Database
from atwill.controller.image import store


def test_a_starting_controller_leaves_anothers_uploads_alone(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'images.db'}")
    Base.metadata.create_all(db.engine)
    ctl = Controller(settings=Settings(state_dir=tmp_path / "ctl"), db=db,
                     keys=None)  # type: ignore[arg-type]
    try:
        mine, theirs, done, old = (str(uuid.uuid4()) for _ in range(4))
        with db.session() as session:
            session.add_all([Image(id=mine, status="saving"), Image(id=theirs, status="saving"),
                             Image(id=done, status="active"), Image(id=old, status="queued")])
        images = store.ImageStore.of(ctl)
        images.root.mkdir(parents=True)
        other = store.controller_tag(str(tmp_path / "ctl2"))
        assert other != images.owner
        files = {
            "mine": f"{store.TEMP_PREFIX}{images.owner}-{mine}-{'a' * 32}",
            "theirs": f"{store.TEMP_PREFIX}{other}-{theirs}-{'b' * 32}",
            "legacy": f"{store.TEMP_PREFIX}{old}-{'c' * 32}",  # before tags: anyone's debris
        }
        for name in (*files.values(), done, old, theirs):
            (images.root / name).write_bytes(b"data")
        store.recover(ctl)
        with db.session() as session:
            status = {i.id: i.status for i in session.query(Image)}
        assert status == {mine: "queued", theirs: "saving", done: "active", old: "queued"}
        # Theirs: its temporary file, and its data file renamed but not yet committed.
        assert sorted(p.name for p in images.root.iterdir()) == sorted(
            [files["theirs"], done, theirs])
    finally:
        db.dispose()


def test_an_upload_names_its_controller_and_image() -> None:
    tag = store.controller_tag("/var/lib/atwill")
    image = str(uuid.uuid4())
    name = f"{store.TEMP_PREFIX}{tag}-{image}-{uuid.uuid4().hex}"
    assert store.temp_owner(name) == (tag, image)
    assert store.temp_owner(f"{store.TEMP_PREFIX}{image}-{uuid.uuid4().hex}") is None
    assert store.temp_owner(f"{store.TEMP_PREFIX}short") is None
