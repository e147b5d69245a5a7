"""A storage node's side of os-volume_upload_image: the copy in the image's format, sent
once, a failure reported, an unreachable controller tried again (real qemu-img)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.storage.uploads import Unreachable, VolumeUploads
from atwill.controller.volume.volume_upload import parse
from atwill.core.errors import BadRequest
from atwill.core.microversion import Version

IMAGE = "5f0e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"
PATTERN = b"atwill-volume-data" * 100


class FakeController:
    def __init__(self, unreachable: int = 0) -> None:
        self.sent: dict[str, bytes] = {}
        self.failures: dict[str, str] = {}
        self.unreachable = unreachable

    def send(self, image_id: str, data: Path) -> None:
        if self.unreachable:
            self.unreachable -= 1
            raise Unreachable("connection refused")
        self.sent[image_id] = data.read_bytes()

    def failed(self, image_id: str, message: str) -> None:
        self.failures[image_id] = message


@pytest.fixture
def volume_file(tmp_path: Path) -> Path:
    path = tmp_path / "vol.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 4k", str(path)],
                   check=True, capture_output=True)
    return path


def wanted(fmt: str = "raw") -> dict[str, Any]:
    return {"id": "v1", "size_gb": 1, "source": {"upload": {"image_id": IMAGE,
                                                           "disk_format": fmt}}}


def test_the_copy_is_sent_once_in_the_images_format(tmp_path: Path,
                                                    volume_file: Path) -> None:
    ctl = FakeController()
    uploads = VolumeUploads(tmp_path / ".uploads", ctl)  # type: ignore[arg-type]
    uploads.run(wanted(), volume_file, None)
    data = ctl.sent[IMAGE]
    assert len(data) == 1 << 20 and data[:4096] == b"a" * 4096 and data[4096:] == bytes(
        (1 << 20) - 4096)
    uploads.run(wanted(), volume_file, None)  # the desired state has not caught up yet
    assert list(ctl.sent) == [IMAGE] and not list((tmp_path / ".uploads").iterdir())
    uploads.retain({"v1": {"id": "v1", "source": None}})  # done: no longer asked
    assert not uploads._answered


def test_an_attached_volume_is_copied_through_its_backup(tmp_path: Path,
                                                         volume_file: Path) -> None:
    ctl = FakeController()
    uploads = VolumeUploads(tmp_path / ".uploads", ctl)  # type: ignore[arg-type]
    used: list[Path] = []

    def backup(target: Path) -> None:
        used.append(target)
        target.write_bytes(volume_file.read_bytes())

    uploads.run(wanted("qcow2"), tmp_path / "missing.qcow2", backup)
    assert ctl.sent[IMAGE][:4] == b"QFI\xfb" and not used[0].exists()


def test_a_failure_is_reported_and_unreachable_is_tried_again(tmp_path: Path,
                                                               volume_file: Path) -> None:
    ctl = FakeController(unreachable=1)
    uploads = VolumeUploads(tmp_path / ".uploads", ctl)  # type: ignore[arg-type]
    uploads.run(wanted(), volume_file, None)
    assert not ctl.sent and not ctl.failures
    uploads.run(wanted(), volume_file, None)
    assert IMAGE in ctl.sent
    broken = FakeController()
    uploads = VolumeUploads(tmp_path / ".uploads", broken)  # type: ignore[arg-type]
    uploads.run(wanted(), tmp_path / "gone.qcow2", None)
    assert not broken.sent and "gone.qcow2" in broken.failures[IMAGE]


@pytest.mark.parametrize(("arg", "version", "words"), [
    ({}, "3.0", "image_name"),
    ({"image_name": ""}, "3.0", "image_name"),
    ({"image_name": "x", "disk_format": "iso"}, "3.0", "disk_format"),
    ({"image_name": "x", "disk_format": "vmdk"}, "3.0", "raw or qcow2"),
    ({"image_name": "x", "visibility": "public"}, "3.0", "'visibility'"),
    ({"image_name": "x", "visibility": "everyone"}, "3.1", "visibility"),
    ({"image_name": "x", "force": "maybe"}, "3.1", "force"),
    ({"image_name": "x", "colour": "red"}, "3.1", "'colour'"),
])
def test_bad_requests_name_the_field(arg: dict, version: str, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse(arg, Version.parse(version))


def test_cinders_defaults() -> None:
    assert parse({"image_name": "img"}, Version.parse("3.1")) == {
        "image_name": "img", "force": False, "disk_format": "raw",
        "container_format": "bare", "visibility": "private", "protected": False}
    assert parse({"image_name": "img", "force": "true"}, Version.parse("3.0"))["visibility"] \
        == "shared"
