"""Image attribute rules: what clients may write and with which values."""

import pytest

from atwill.core import imageattrs
from atwill.core.errors import BadRequest, Forbidden, PayloadTooLarge

ID = "6b7a9f43-4a34-4bd8-9a53-d1c5b1e1b0a1"


def test_create_fields_split_core_and_properties() -> None:
    core, props = imageattrs.create_fields({
        "id": ID, "name": "n", "visibility": "private", "tags": ["a", "a", "b"],
        "min_disk": 1, "disk_format": "qcow2", "hw_video_model": "qxl"})
    assert core == {"id": ID, "name": "n", "visibility": "private", "tags": ["a", "b"],
                    "min_disk": 1, "disk_format": "qcow2"}
    assert props == {"hw_video_model": "qxl"}


@pytest.mark.parametrize(("body", "error"), [
    ({"status": "active"}, Forbidden), ({"size": 1}, Forbidden), ({"deleted": "x"}, Forbidden),
    ({"os_glance_importing": "x"}, Forbidden), ({"id": "nope"}, BadRequest),
    ({"id": 5}, BadRequest), ({"visibility": "everyone"}, BadRequest),
    ({"protected": "yes"}, BadRequest), ({"min_ram": -1}, BadRequest),
    ({"min_disk": True}, BadRequest), ({"disk_format": "floppy"}, BadRequest),
    ({"container_format": "box"}, BadRequest), ({"name": "x" * 256}, BadRequest),
    ({"tags": "a"}, BadRequest), ({"tags": [1]}, BadRequest), ({"prop": 1}, BadRequest),
    ({"tags": [str(i) for i in range(129)]}, PayloadTooLarge), ({"k" * 256: "v"}, BadRequest),
])
def test_create_rejects(body: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        imageattrs.create_fields(body)


def doc(**extra: object) -> dict:
    base = {"id": ID, "name": "n", "status": "queued", "visibility": "shared", "tags": [],
            "disk_format": None, "min_disk": 0, "self": "/v2/images/" + ID, "p": "1"}
    return {**base, **extra}


def test_changes() -> None:
    new = {**doc(name="m", tags=["t"], q="2")}
    del new["p"]
    core, props = imageattrs.changes(doc(), new, "queued")
    assert core == {"name": "m", "tags": ["t"]}
    assert props == {"q": "2"}


@pytest.mark.parametrize(("new", "status", "error"), [
    (doc(status="active"), "queued", Forbidden),
    ({k: v for k, v in doc().items() if k != "name"}, "queued", Forbidden),
    (doc(disk_format="raw"), "active", Forbidden),
    (doc(min_disk="1"), "queued", BadRequest),
    (doc(p=None), "queued", BadRequest),
])
def test_changes_rejects(new: dict, status: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        imageattrs.changes(doc(), new, status)
