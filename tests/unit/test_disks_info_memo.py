"""A warm start asks qemu-img about its cached base once, not once per step."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from atwill.agent.hypervisor import disks

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = disks.run

    def run(argv, **kwargs):
        calls.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(disks, "run", run)
    return calls


def _base(path: Path, size: str = "1G") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def infos(calls: list[list[str]]) -> int:
    return sum(1 for argv in calls if argv[:2] == ["qemu-img", "info"])


def test_verify_then_overlay_runs_qemu_img_info_once(tmp_path: Path,
                                                     counted: list[list[str]]) -> None:
    base = _base(tmp_path / "base")
    assert disks.verify_image(base, "qcow2") == "qcow2"
    disks.create_overlay(base, tmp_path / "disk1", 2)
    disks.create_overlay(base, tmp_path / "disk2", 0)
    assert infos(counted) == 1
    assert disks.virtual_size(tmp_path / "disk1") == 2 << 30
    assert disks.virtual_size(tmp_path / "disk2") == 1 << 30


def test_a_changed_file_is_asked_again(tmp_path: Path, counted: list[list[str]]) -> None:
    base = _base(tmp_path / "base")
    assert disks.virtual_size(base) == 1 << 30
    replaced = _base(tmp_path / "other", "3G")
    os.replace(replaced, base)  # a new file under the same name
    assert disks.virtual_size(base) == 3 << 30
    subprocess.run(["qemu-img", "resize", "-q", str(base), "4G"], check=True)
    assert disks.virtual_size(base) == 4 << 30
    assert infos(counted) == 3

