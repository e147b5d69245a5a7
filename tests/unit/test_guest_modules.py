"""Module load order from a fake modinfo (Debian 6.1's real dependencies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.guest import modules
from atwill.guest.modules import ModuleCycleError, load_order, parse_depends

# What `modinfo -F depends` says for Debian's 6.1 kernel (checked by hand).
DEBIAN = {
    "virtio_ring": [], "virtio": ["virtio_ring"],
    "virtio_pci_modern_dev": [], "virtio_pci_legacy_dev": [],
    "virtio_pci": ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"],
    "failover": [], "net_failover": ["failover"],
    "virtio_net": ["virtio_ring", "virtio", "net_failover"],
    "virtio_blk": ["virtio", "virtio_ring"],
    "scsi_common": [], "scsi_mod": ["scsi_common"], "cdrom": [],
    "sr_mod": ["scsi_mod", "cdrom", "scsi_common"], "isofs": ["cdrom"],
    "libata": ["scsi_mod", "scsi_common"], "ata_piix": ["libata"],
    "fat": [], "vfat": ["fat"], "nls_cp437": [], "nls_ascii": [], "button": [], "evdev": [],
}


def _before(order: list[str], first: str, then: str) -> bool:
    return order.index(first) < order.index(then)


def test_every_module_comes_after_its_dependencies() -> None:
    order = load_order(modules.WANTED, DEBIAN.__getitem__)
    assert sorted(order) == sorted(DEBIAN)
    for name, deps in DEBIAN.items():
        for dep in deps:
            assert _before(order, dep, name), (dep, name)
    assert order[:5] == ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
                         "virtio", "virtio_pci"]
    assert _before(order, "failover", "net_failover")


def test_the_order_is_stable() -> None:
    assert load_order(modules.WANTED, DEBIAN.__getitem__) == \
        load_order(modules.WANTED, DEBIAN.__getitem__)


def test_built_in_modules_are_left_out() -> None:
    # A kernel with virtio built in: only the network failover modules remain.
    available = {"failover", "net_failover", "virtio_net"}
    assert load_order(["virtio_net"], DEBIAN.__getitem__, available.__contains__) == \
        ["failover", "net_failover", "virtio_net"]


def test_dashes_and_underscores_are_one_name() -> None:
    deps = {"a_b": ["c-d"], "c_d": []}
    assert load_order(["a-b"], deps.__getitem__) == ["c_d", "a_b"]


def test_a_cycle_is_an_error() -> None:
    deps = {"a": ["b"], "b": ["c"], "c": ["a"]}
    with pytest.raises(ModuleCycleError, match="a -> b -> c -> a"):
        load_order(["a"], deps.__getitem__)


def test_modinfo_depends_field() -> None:
    assert parse_depends("virtio_ring,virtio,net_failover\n") == \
        ["virtio_ring", "virtio", "net_failover"]
    assert parse_depends("\n") == []
    assert parse_depends("scsi-mod") == ["scsi_mod"]


def test_module_files_are_found_by_name(tmp_path: Path) -> None:
    for rel in ("kernel/drivers/virtio/virtio_ring.ko", "kernel/fs/fat/vfat.ko",
                "kernel/drivers/scsi/scsi-mod.ko", "modules.order"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = modules.module_files(tmp_path)
    assert set(found) == {"virtio_ring", "vfat", "scsi_mod"}
    assert found["vfat"] == tmp_path / "kernel/fs/fat/vfat.ko"


def test_resolve_uses_modinfo_for_each_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("virtio_ring", "virtio", "virtio_blk"):
        (tmp_path / f"{name}.ko").write_bytes(b"")
    monkeypatch.setattr(modules, "modinfo_depends", lambda path: DEBIAN[path.stem])
    resolved = modules.resolve(tmp_path, ["virtio_blk"])
    assert resolved == [(name, tmp_path / f"{name}.ko")
                        for name in ("virtio_ring", "virtio", "virtio_blk")]
