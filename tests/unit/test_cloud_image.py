"""The Debian cloud image's pure parts: disk layout, mmdebstrap command, configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.guest import cloud, disk

MIB = 1024 * 1024
INSTALLED = ["cloud-init=22.4.2-1+deb12u4", "libc6=2.36-9+deb12u10",
             "linux-image-6.1.0-56-cloud-amd64=6.1.192-2", "linux-image-cloud-amd64=6.1.192-2",
             "openssh-server=1:9.2p1-2+deb12u10"]


def test_layout_puts_boot_at_one_mib_and_root_after_it_to_the_end() -> None:
    layout = disk.partition_layout(30 * MIB + 1, 2048 * MIB)
    assert (layout.boot_start, layout.boot_size) == (MIB, 31 * MIB)
    assert layout.root_start == 32 * MIB
    assert layout.total == 2048 * MIB
    assert layout.root_size == (2048 - 32) * MIB


def test_layout_rounds_the_disk_down_to_whole_mib() -> None:
    layout = disk.partition_layout(MIB, 512 * MIB + 4096)
    assert layout.total == 512 * MIB


def test_layout_refuses_a_disk_without_room_for_root() -> None:
    with pytest.raises(ValueError):
        disk.partition_layout(64 * MIB, 100 * MIB)


def test_sfdisk_script_in_sectors_with_the_boot_partition_active() -> None:
    layout = disk.partition_layout(31 * MIB, 2048 * MIB)
    assert disk.sfdisk_script(layout) == (
        "label: dos\nunit: sectors\n"
        "start=2048, size=63488, type=e, bootable\n"
        "start=65536, size=4128768, type=83\n")


def test_mmdebstrap_includes_every_package_and_keeps_its_debs(tmp_path: Path) -> None:
    argv = cloud.mmdebstrap_argv(tmp_path / "root", tmp_path / "debs")
    assert argv[:7] == ["env", "-u", "PYTHONDONTWRITEBYTECODE", "-u", "PYTHONPATH",
                        "-u", "PYTHONHOME"]
    assert "--mode=root" in argv
    assert f"--include={','.join(cloud.PACKAGES)}" in argv
    assert f"--setup-hook=sync-in {tmp_path / 'debs'} /var/cache/apt/archives/" in argv
    assert f"--customize-hook=sync-out /var/cache/apt/archives {tmp_path / 'debs'}" in argv
    assert argv[-5:] == [cloud.SUITE, str(tmp_path / "root"), *cloud.MIRRORS]


def test_cache_key_is_stable_and_follows_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    key = cloud.cache_key()
    assert key == cloud.cache_key() and len(key) == 16
    monkeypatch.setattr(cloud, "PACKAGES", (*cloud.PACKAGES, "vim"))
    assert cloud.cache_key() != key


def test_cloud_cfg_lists_the_openstack_sources() -> None:
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load(cloud.CLOUD_CFG)
    assert cfg["datasource_list"] == ["ConfigDrive", "OpenStack", "None"]
    assert cfg["locale"] == "C.UTF-8"
    assert "rsa" not in cfg["ssh_genkeytypes"]


def test_configure_writes_the_files_and_forgets_the_build_machine(tmp_path: Path) -> None:
    root = tmp_path
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("secret")
    (root / "etc/ssh/sshd_config").write_text("kept")
    (root / "etc/hostname").write_text("build-host\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "e2scrub_reap.service").symlink_to("/lib/systemd/system/e2scrub_reap.service")
    cloud.configure(root)
    assert (root / "etc/hostname").read_text() == ""
    assert (root / "etc/fstab").read_text().startswith(f"LABEL={cloud.ROOT_LABEL} / ext4 ")
    assert (root / "etc/cloud/cloud.cfg.d/90_atwill.cfg").read_text() == cloud.CLOUD_CFG
    assert not (root / "etc/ssh/ssh_host_ed25519_key").exists()
    assert (root / "etc/ssh/sshd_config").exists()
    assert (root / "etc/machine-id").read_text() == ""
    assert not (wants / "e2scrub_reap.service").is_symlink()
    assert (root / "etc/systemd/system/e2scrub_reap.service").readlink() == Path("/dev/null")
    cloud.configure(root)  # again, over its own result


def test_kernel_and_key_packages_from_the_installed_list() -> None:
    assert cloud.kernel_of(INSTALLED) == "6.1.0-56-cloud-amd64"
    assert cloud.key_packages(INSTALLED) == (
        "cloud-init=22.4.2-1+deb12u4", "linux-image-6.1.0-56-cloud-amd64=6.1.192-2",
        "linux-image-cloud-amd64=6.1.192-2", "openssh-server=1:9.2p1-2+deb12u10")
    with pytest.raises(ValueError):
        cloud.kernel_of(["cloud-init=1"])


def test_prune_keeps_only_the_installed_debs(tmp_path: Path) -> None:
    for name in ("cloud-init_22.4.2-1+deb12u4_all.deb", "cloud-init_22.4.2-1+deb12u3_all.deb",
                 "openssh-server_1%3a9.2p1-2+deb12u10_amd64.deb", "vim_2%3a9.0_amd64.deb"):
        (tmp_path / name).write_bytes(b"")
    cloud._prune_debs(tmp_path, INSTALLED)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "cloud-init_22.4.2-1+deb12u4_all.deb", "openssh-server_1%3a9.2p1-2+deb12u10_amd64.deb"]
