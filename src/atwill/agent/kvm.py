"""Whether KVM really runs guests here, found by booting a 512-byte guest under QEMU."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

QEMU = "qemu-system-x86_64"
DEBUG_EXIT_PORT = 0xF4
GUEST_CODE = 0x31
# isa-debug-exit turns a byte written to its port into QEMU's exit status (value << 1) | 1.
SUCCESS = (GUEST_CODE << 1) | 1

BOOT_SECTOR = (
    bytes([0xFA,                         # cli
           0xB0, GUEST_CODE,             # mov al, 0x31
           0xE6, DEBUG_EXIT_PORT,        # out 0xf4, al
           0xF4,                         # hlt
           0xEB, 0xFD])                  # jmp back to hlt, should the write not end QEMU
    .ljust(510, b"\0") + b"\x55\xaa"     # the BIOS boots only sectors ending in 0x55AA
)


def probe(accel: str, timeout: float = 5.0) -> bool:
    """Boot the tiny guest with -accel accel; True only if it ran its code and QEMU exited."""
    if shutil.which(QEMU) is None:
        return False
    with tempfile.TemporaryDirectory(prefix="atwill-kvm-") as tmp:
        disk = Path(tmp) / "boot.img"
        disk.write_bytes(BOOT_SECTOR)
        args = [QEMU, "-accel", accel, "-nodefaults", "-display", "none", "-no-reboot",
                "-m", "16", "-serial", "none", "-monitor", "none",
                "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04",
                "-drive", f"file={disk},format=raw,if=ide"]
        try:
            # On some hosts /dev/kvm opens but the guest never runs, so only a timeout tells.
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == SUCCESS


CACHE_DIR = Path("/run/atwill")
CPUINFO = Path("/proc/cpuinfo")


def hardware_virtualization(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU advertises VT-x or AMD-V (vmx/svm), as cpu-checker's kvm-ok asks.

    Seen here: /dev/kvm works and the real-mode boot sector runs, yet on a CPU without
    vmx/svm flags a real guest stops in QEMU's 'internal-error' state under KVM.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {word for line in text.splitlines() if line.startswith("flags")
             for word in line.split(":", 1)[-1].split()}
    return bool(flags & {"vmx", "svm"})


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@functools.cache
def kvm_probe(timeout: float = 2.0) -> bool:
    """True when a guest really runs under KVM; probed once per boot of this machine.

    The tiny guest finishes in well under a second even under TCG, so two seconds
    is ample for KVM; the answer is kept for the boot because it cannot change
    without one, and joins and agent restarts should not wait for it again.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not hardware_virtualization():
        return False
    # v2: answers cached before the CPU-flag check may say "kvm" where guests fail.
    cache = CACHE_DIR / f"kvm-probe-v2-{_boot_id()}"
    try:
        return cache.read_text().strip() == "kvm"
    except OSError:
        pass
    works = probe("kvm", timeout)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        cache.write_text("kvm\n" if works else "tcg\n")
    except OSError:
        pass
    return works
