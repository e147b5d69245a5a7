"""The Debian cloud image: Debian 12 with systemd and cloud-init, bootstrapped by mmdebstrap.

A second image kind beside the small atwill guest: a real Debian cloud system that
cloud-init configures from an OpenStack config drive or metadata service, as a Debian
cloud image is. It is built from Debian's packages only, with no loop devices or mounts.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from atwill.hostlib.run import run

from . import disk, packages, scratch
from .build import Image, copy_out

# Bump when the image changes in a way the constants below do not show.
FORMAT = "debian-cloud-1"
SUITE = "bookworm"
MIRRORS = ("deb http://deb.debian.org/debian bookworm main",
           "deb http://deb.debian.org/debian bookworm-updates main",
           "deb http://deb.debian.org/debian-security bookworm-security main")
# What a Debian 12 cloud image has that a minimal base lacks: systemd as init, the cloud
# kernel, cloud-init with growpart, SSH, and netplan rendering to systemd-networkd.
PACKAGES = ("systemd-sysv", "udev", "dbus", "linux-image-cloud-amd64", "initramfs-tools",
            "cloud-init", "cloud-guest-utils", "openssh-server", "sudo", "netplan.io",
            "systemd-resolved", "e2fsprogs", "iproute2", "ca-certificates", "less")
# Manuals, translations and documentation stay out (copyright files stay in).
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/locale/*",
                "path-include=/usr/share/locale/locale.alias",
                "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright")
ROOT_LABEL = "cloudimg-rootfs"
BOOT_LABEL = "BOOT"
CMDLINE = f"root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8"
DISK_SIZE = 2 * 1024 * 1024 * 1024
CLOUD_CFG = """\
# atwill: OpenStack's config drive first, then its metadata service (169.254.169.254).
# cloud-init (and ds-identify) only try the metadata service on x86 when the DMI product
# name is "OpenStack Nova", as QEMU shows it when given Nova's -smbios type=1 options.
datasource_list: [ ConfigDrive, OpenStack, None ]
# Debian's locale-gen ignores the locale it is given, so cloud-init's default (en_US.UTF-8)
# fails to apply; C.UTF-8 is always there.
locale: C.UTF-8
# An RSA host key takes most of a minute to generate under TCG; these take a second.
ssh_genkeytypes: [ ed25519, ecdsa ]
# The boot loader is syslinux: there is no GRUB for debconf to be told about.
grub_dpkg:
  enabled: false
"""
CONFIG_FILES = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 rw,discard,errors=remount-ro 0 1\n",
    # Empty: cloud-init sets the instance's hostname on the first boot.
    "etc/hostname": "",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
                 "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
    "etc/cloud/cloud.cfg.d/90_atwill.cfg": CLOUD_CFG,
}
# Per-machine identity made while bootstrapping; every instance makes its own on first boot.
REMOVED = ("etc/ssh/ssh_host_*", "var/lib/dbus/machine-id")
# There is no LVM to scrub, and under TCG this unit keeps the CPU from cloud-init for ~40 s.
MASKED = ("e2scrub_reap.service",)


def build_cloud_image(output: Path | None = None, cache: Path | None = None,
                      progress: Callable[[str], None] = lambda message: None) -> Image:
    """Build (or reuse from the cache) the Debian cloud image; copy it to output when given."""
    cache = cache or packages.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    image = cache / "images" / f"debian-cloud-{cache_key()}.qcow2"
    manifest = image.with_suffix(".packages")
    # One build at a time per cache, shared with the small image's builder.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        scratch.sweep(cache / "images")
        cached = image.exists() and manifest.exists()
        if not cached:
            image.parent.mkdir(parents=True, exist_ok=True)
            with scratch.scratch_dir(image.parent) as tmp:
                _build(Path(tmp), cache / "debs" / SUITE, image, manifest, progress)
    installed = manifest.read_text().split()
    return Image(copy_out(image, output), kernel_of(installed), key_packages(installed), cached)


def cache_key() -> str:
    """What the image is made from: format, suite, mirrors, packages, configuration."""
    digest = hashlib.sha256(repr((FORMAT, SUITE, MIRRORS, PACKAGES, DPKG_OPTIONS, CMDLINE,
                                  DISK_SIZE, sorted(CONFIG_FILES.items()), REMOVED,
                                  MASKED)).encode())
    return digest.hexdigest()[:16]


def mmdebstrap_argv(root: Path, debs: Path) -> list[str]:
    """The mmdebstrap command bootstrapping root, reusing and refilling the .deb cache debs."""
    # The host's PYTHONDONTWRITEBYTECODE would leave cloud-init without its .pyc files.
    argv = ["env", "-u", "PYTHONDONTWRITEBYTECODE", "-u", "PYTHONPATH", "-u", "PYTHONHOME",
            "mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
            f"--include={','.join(PACKAGES)}"]
    argv += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    argv += ["--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
             f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
             f"--customize-hook=sync-out /var/cache/apt/archives {debs}"]
    return [*argv, SUITE, str(root), *MIRRORS]


def configure(root: Path) -> None:
    """Write atwill's configuration into the tree and remove what must differ per instance."""
    for name, text in CONFIG_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # it may be a symbolic link into the host's /run
        path.write_text(text)
    for pattern in REMOVED:
        for path in root.glob(pattern):
            path.unlink()
    # Empty, not missing: systemd makes a new machine id on the first boot.
    (root / "etc" / "machine-id").write_text("")
    for unit in MASKED:
        for wants in (root / "etc/systemd/system").glob(f"*.wants/{unit}"):
            wants.unlink()
        mask = root / "etc/systemd/system" / unit
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")


def kernel_of(installed: list[str]) -> str:
    """The kernel release from the package list ("linux-image-6.1.0-56-cloud-amd64=…")."""
    for entry in installed:
        name = entry.partition("=")[0]
        if name.startswith("linux-image-") and name[len("linux-image-"):][:1].isdigit():
            return name[len("linux-image-"):]
    raise ValueError("no kernel package in the image")


def key_packages(installed: list[str]) -> tuple[str, ...]:
    """name=version of the packages asked for and the kernel image itself."""
    return tuple(entry for entry in installed
                 if entry.partition("=")[0] in PACKAGES
                 or entry.startswith(f"linux-image-{kernel_of(installed)}="))


def _build(tmp: Path, debs: Path, image: Path, manifest: Path,
           progress: Callable[[str], None]) -> None:
    root = tmp / "root"
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"bootstrapping Debian {SUITE} with mmdebstrap (a few minutes)")
    run(mmdebstrap_argv(root, debs), timeout=3600)
    installed = run(["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W",
                     "-f", "${Package}=${Version}\n"], timeout=60).stdout.split()
    _prune_debs(debs, installed)
    configure(root)
    version = kernel_of(installed)
    progress(f"writing the disk with kernel {version}")
    boot = tmp / "boot"
    boot.mkdir()
    shutil.copyfile(root / "boot" / f"vmlinuz-{version}", boot / "vmlinuz")
    shutil.copyfile(root / "boot" / f"initrd.img-{version}", boot / "initrd.img")
    (boot / "syslinux.cfg").write_text(disk.syslinux_cfg("vmlinuz", "initrd.img", CMDLINE))
    files = {path.name: path for path in boot.iterdir()}
    layout = disk.partition_layout(disk.size_for(files), DISK_SIZE)
    raw = tmp / "disk.raw"
    disk.make_partitioned_disk(raw, layout, files, BOOT_LABEL, root, ROOT_LABEL)
    progress("converting to compressed qcow2")
    partial = tmp / "image.qcow2"
    disk.to_compressed_qcow2(raw, partial)
    manifest.write_text("".join(f"{entry}\n" for entry in installed))
    partial.replace(image)


def _prune_debs(debs: Path, installed: list[str]) -> None:
    # Keep only what the image holds now, so the cache does not grow with every update.
    wanted = {entry.replace("=", "_").replace(":", "%3a") for entry in installed}
    for deb in debs.glob("*.deb"):
        if "_".join(deb.name.split("_")[:2]) not in wanted:
            deb.unlink()
