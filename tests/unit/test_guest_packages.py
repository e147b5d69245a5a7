"""Package resolution, its memo, the offline fallback, and the boot disk's pure parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.guest import disk, packages
from atwill.hostlib.run import HostCommandError

SHOW_META = """Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
"""


def test_control_fields() -> None:
    assert packages.parse_control(SHOW_META) == ("6.1.192-2", ["linux-image-6.1.0-56-amd64"])
    assert packages.parse_control("Version: 1:1.35.0-4\nDepends: a (>= 1) | b, c\n") == \
        ("1:1.35.0-4", ["a", "c"])
    assert packages.parse_control("") == ("", [])


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("ATWILL_CACHE_DIR", str(tmp_path))
    assert packages.cache_dir() == tmp_path


def test_resolution_is_remembered_until_apt_lists_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "x_Packages").write_text("a")
    monkeypatch.setattr(packages, "APT_STATE", (lists,))
    calls: list[str] = []

    def resolve(name: str) -> tuple[str, str]:
        calls.append(name)
        return f"{name}-real", str(len(calls))

    monkeypatch.setattr(packages, "resolve", resolve)
    cache = tmp_path / "cache"
    assert packages.resolve_cached("k", cache) == ("k-real", "1")
    assert packages.resolve_cached("k", cache) == ("k-real", "1")
    (lists / "partial").mkdir()  # apt's download directory does not count
    assert packages.resolve_cached("k", cache) == ("k-real", "1")
    (lists / "y_Packages").write_text("b")
    assert packages.resolve_cached("k", cache) == ("k-real", "2")
    assert calls == ["k", "k"]


def test_offline_fetch_reuses_what_was_unpacked(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, cache: Path) -> tuple[str, str]:
        raise HostCommandError(["apt-cache"], 100, "no lists")

    monkeypatch.setattr(packages, "resolve_cached", offline)
    with pytest.raises(HostCommandError):
        packages.fetch(packages.KERNEL_PACKAGE, tmp_path)
    root = tmp_path / "packages" / "linux-image-6.1.0-56-amd64_6.1.192-2"
    root.mkdir(parents=True)
    (root / ".unpacked").write_text("linux-image-6.1.0-56-amd64=6.1.192-2\n")
    found = packages.fetch(packages.KERNEL_PACKAGE, tmp_path)
    assert found == packages.Package("linux-image-6.1.0-56-amd64", "6.1.192-2", root)
    assert found.ident == "linux-image-6.1.0-56-amd64=6.1.192-2"


def test_syslinux_cfg_boots_at_once() -> None:
    cfg = disk.syslinux_cfg("vmlinuz", "initrd.gz", "console=ttyS0")
    assert "TIMEOUT 0" in cfg and "PROMPT 0" in cfg
    assert "KERNEL vmlinuz" in cfg and "INITRD initrd.gz" in cfg
    assert "APPEND console=ttyS0" in cfg


def test_disk_size_has_room_and_a_floor(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"x")
    assert disk.size_for({"a": small}) == 16 * 1024 * 1024
    big = tmp_path / "big"
    with open(big, "wb") as handle:
        handle.truncate(20 * 1024 * 1024 + 1)
    assert disk.size_for({"a": big}) == 23 * 1024 * 1024
