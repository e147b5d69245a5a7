"""atwill image build: assemble the guest image from Debian packages, cached by its inputs."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import disk, modules, packages, scratch
from .initramfs import Archive

# Bump when the layout changes in a way the inputs below do not show.
FORMAT = "atwill-guest-1"
CMDLINE = "console=tty0 console=ttyS0,115200n8 quiet panic=10"
# Package data copied into the initramfs: (file in files/, path in the guest, mode).
GUEST_FILES = (
    ("rcS", "etc/init.d/rcS", 0o755),
    ("rcK", "etc/init.d/rcK", 0o755),
    ("inittab", "etc/inittab", 0o644),
    ("udhcpc.script", "etc/udhcpc.script", 0o755),
    ("identity.sh", "usr/lib/atwill/identity.sh", 0o644),
    ("jsonflat.awk", "usr/lib/atwill/jsonflat.awk", 0o644),
)
STATIC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/shadow": "root:*:0:0:99999:7:::\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/resolv.conf": "",
}


@dataclass(frozen=True)
class Image:
    """A built image: where it is, what it was built from, and whether the cache had it."""

    path: Path
    kernel_version: str
    packages: tuple[str, ...]
    cached: bool


def guest_file(name: str) -> bytes:
    """One of the package's guest files (init scripts, awk)."""
    return resources.files("atwill.guest").joinpath("files", name).read_bytes()


def build_image(output: Path | None = None, cache: Path | None = None,
                progress: Callable[[str], None] = lambda message: None) -> Image:
    """Build (or reuse from the cache) the guest image; copy it to output when given."""
    cache = cache or packages.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache: a second agent or test waits and then reuses it.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        scratch.sweep(cache / "images")
        progress("resolving and fetching packages")
        kernel = packages.fetch(packages.KERNEL_PACKAGE, cache)
        busybox = packages.fetch(packages.BUSYBOX_PACKAGE, cache)
        version = kernel_version(kernel.root)
        image = cache / "images" / f"atwill-guest-{_digest(kernel, busybox)}.qcow2"
        cached = image.exists()
        if not cached:
            progress(f"assembling with kernel {version}")
            image.parent.mkdir(parents=True, exist_ok=True)
            with scratch.scratch_dir(image.parent) as tmp:
                _assemble(Path(tmp), kernel.root, busybox.root, version, image)
    return Image(copy_out(image, output), version, (kernel.ident, busybox.ident), cached)


def copy_out(image: Path, output: Path | None) -> Path:
    """The cached image copied whole to output (never half-written), or itself."""
    if output is None:
        return image
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    shutil.copyfile(image, partial)
    partial.replace(output)
    return output


def kernel_version(root: Path) -> str:
    """The kernel release of an unpacked linux-image package (its /lib/modules entry)."""
    versions = sorted(p.name for p in (root / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise ValueError(f"expected one kernel in {root}, found {versions}")
    return versions[0]


def _digest(*inputs: packages.Package) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    for package in inputs:
        digest.update(package.ident.encode() + b"\0")
    for name, target, mode in GUEST_FILES:
        digest.update(f"{name}:{target}:{mode}\0".encode() + guest_file(name))
    digest.update(repr((CMDLINE, modules.WANTED, sorted(STATIC_FILES.items()))).encode())
    return digest.hexdigest()[:16]


def _assemble(tmp: Path, kernel_root: Path, busybox_root: Path, version: str,
              image: Path) -> None:
    initrd = tmp / "initrd.gz"
    initrd.write_bytes(make_initramfs(kernel_root, busybox_root / "bin" / "busybox", version))
    vmlinuz = tmp / "vmlinuz"
    shutil.copyfile(kernel_root / "boot" / f"vmlinuz-{version}", vmlinuz)
    cfg = tmp / "syslinux.cfg"
    cfg.write_text(disk.syslinux_cfg("vmlinuz", "initrd.gz", CMDLINE))
    raw = tmp / "disk.raw"
    disk.make_boot_disk(raw, {"vmlinuz": vmlinuz, "initrd.gz": initrd, "syslinux.cfg": cfg})
    partial = tmp / "image.qcow2"
    disk.to_qcow2(raw, partial)
    partial.replace(image)


def make_initramfs(kernel_root: Path, busybox: Path, version: str) -> bytes:
    """The gzip'd initramfs: busybox with its applet links, modules, and the boot scripts."""
    archive = Archive()
    for name in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "proc", "sys", "run",
                 "mnt", "srv", "var"):
        archive.directory(name)
    archive.directory("root", 0o700)
    archive.directory("tmp", 0o1777)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3, 0o666)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in busybox_applets(busybox):
        if applet != "bin/busybox" and applet not in archive.names:
            archive.symlink(applet, "/bin/busybox")
    archive.symlink("init", "/bin/busybox")
    for name, target, mode in GUEST_FILES:
        archive.file(target, guest_file(name), mode)
    for target, text in STATIC_FILES.items():
        archive.file(target, text.encode(), 0o600 if target == "etc/shadow" else 0o644)
    modules_dir = kernel_root / "lib" / "modules" / version
    order = modules.resolve(modules_dir)
    for name, path in order:
        archive.file(f"lib/modules/{version}/{name}.ko", path.read_bytes())
    archive.file(f"lib/modules/{version}/load-order",
                 "".join(f"{name}\n" for name, _ in order).encode())
    return archive.gzip()


def busybox_applets(busybox: Path) -> list[str]:
    """Where busybox wants its applet links ("bin/sh", "usr/bin/awk", ...)."""
    listed = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    return sorted(line.strip().lstrip("/") for line in listed.splitlines()
                  if line.strip() and "linuxrc" not in line)
