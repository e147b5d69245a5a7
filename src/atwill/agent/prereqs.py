"""The host programs and devices a compute node needs, each named with how to install it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Missing:
    """One missing prerequisite and the command that installs it."""

    what: str
    how: str


def _apt(*packages: str) -> str:
    return "apt-get install " + " ".join(packages)


# (program, what it is, how to get it)
PROGRAMS: list[tuple[str, str, str]] = [
    ("qemu-system-x86_64", "QEMU (qemu-system-x86_64)", _apt("qemu-system-x86")),
    ("qemu-img", "qemu-img", _apt("qemu-utils")),
    ("wg", "wg (WireGuard tools)", _apt("wireguard-tools")),
    ("dnsmasq", "dnsmasq", _apt("dnsmasq-base")),
    ("nft", "nft (nftables)", _apt("nftables")),
    ("ip", "ip (iproute2)", _apt("iproute2")),
]


def check(which: Callable[[str], str | None] = shutil.which,
          exists: Callable[[str], bool] = os.path.exists,
          euid: Callable[[], int] = os.geteuid,
          kernel_release: str | None = None) -> list[Missing]:
    """Everything this host lacks to be a compute node; empty when ready."""
    missing: list[Missing] = []
    if euid() != 0:
        missing.append(Missing("root", "run as root (sudo)"))
    if not exists("/dev/net/tun"):
        missing.append(Missing("/dev/net/tun", "modprobe tun"))
    for program, what, how in PROGRAMS:
        if not which(program):
            missing.append(Missing(what, how))
    if not which("wireguard-go") and not _wireguard_module(exists, kernel_release):
        missing.append(Missing("wireguard-go or the wireguard kernel module",
                               _apt("wireguard-go", "wireguard-tools")))
    return missing


def _wireguard_module(exists: Callable[[str], bool], release: str | None) -> bool:
    # Loaded, or available to load for the running kernel.
    release = release or os.uname().release
    return (exists("/sys/module/wireguard")
            or exists(f"/lib/modules/{release}/kernel/drivers/net/wireguard"))


def format_missing(missing: list[Missing]) -> str:
    """A message listing each missing prerequisite and how to install it; '' when none."""
    if not missing:
        return ""
    lines = ["This host is missing prerequisites:"]
    lines += [f"  - {item.what}: {item.how}" for item in missing]
    return "\n".join(lines)
