"""The initramfs archive (cpio newc) and its contents, built from fake packages."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from atwill.guest import build, modules
from atwill.guest.initramfs import Archive


def read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, rdev) from a newc archive, checking its alignment."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    offset = 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[body:body + size], (fields[9], fields[10]))
        offset = body + size + (-size % 4)


def test_archive_round_trip() -> None:
    archive = Archive()
    archive.directory("usr/lib/atwill")
    archive.file("etc/init.d/rcS", b"#!/bin/sh\n", 0o755)
    archive.symlink("bin/sh", "/bin/busybox")
    archive.char_device("dev/console", 5, 1)
    entries = read_cpio(archive.cpio())
    assert list(entries) == ["usr", "usr/lib", "usr/lib/atwill", "etc", "etc/init.d",
                             "etc/init.d/rcS", "bin", "bin/sh", "dev", "dev/console"]
    mode, data, _ = entries["etc/init.d/rcS"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755 and data == b"#!/bin/sh\n"
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"/bin/busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)


def test_archive_is_deterministic_and_rejects_duplicates() -> None:
    def make() -> bytes:
        archive = Archive()
        archive.file("a/b", b"x" * 5)
        return archive.gzip()

    assert make() == make()
    assert read_cpio(gzip.decompress(make()))["a/b"][1] == b"xxxxx"
    archive = Archive()
    archive.file("a", b"")
    with pytest.raises(ValueError, match="already"):
        archive.file("a", b"")


def fake_packages(tmp_path: Path) -> tuple[Path, Path, str]:
    version = "6.1.0-99-amd64"
    kernel = tmp_path / "kernel"
    moddir = kernel / "lib" / "modules" / version / "kernel"
    for name in ("virtio_ring", "virtio", "virtio_net", "evdev"):
        (moddir / f"{name}.ko").parent.mkdir(parents=True, exist_ok=True)
        (moddir / f"{name}.ko").write_bytes(name.encode())
    busybox = tmp_path / "busybox"
    busybox.write_text("#!/bin/sh\nprintf '/bin/sh\\nsbin/init\\nusr/bin/awk\\nlinuxrc\\n'\n")
    busybox.chmod(0o755)
    return kernel, busybox, version


def test_initramfs_holds_busybox_scripts_and_ordered_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel, busybox, version = fake_packages(tmp_path)
    deps = {"virtio_ring": [], "virtio": ["virtio_ring"], "virtio_net": ["virtio"],
            "evdev": []}
    monkeypatch.setattr(modules, "modinfo_depends", lambda path: deps[path.stem])
    entries = read_cpio(gzip.decompress(build.make_initramfs(kernel, busybox, version)))
    assert entries["init"][1] == b"/bin/busybox"
    assert entries["bin/sh"][1] == b"/bin/busybox"
    assert entries["usr/bin/awk"][1] == b"/bin/busybox"
    assert "linuxrc" not in entries
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert stat.S_IMODE(entries["etc/init.d/rcS"][0]) == 0o755
    assert b"atwill-guest ready:" in entries["etc/init.d/rcS"][1]
    assert b"::sysinit:/etc/init.d/rcS" in entries["etc/inittab"][1]
    order = entries[f"lib/modules/{version}/load-order"][1].decode().split()
    assert order == ["virtio_ring", "virtio", "virtio_net", "evdev"]
    assert entries[f"lib/modules/{version}/virtio_net.ko"][1] == b"virtio_net"


def test_kernel_version_is_the_one_modules_directory(tmp_path: Path) -> None:
    kernel, _, version = fake_packages(tmp_path)
    assert build.kernel_version(kernel) == version
    (kernel / "lib" / "modules" / "6.1.0-98-amd64").mkdir()
    with pytest.raises(ValueError, match="expected one kernel"):
        build.kernel_version(kernel)
