"""Prerequisite checks with injected lookups."""

from __future__ import annotations

from collections.abc import Callable

from atwill.agent.prereqs import Missing, check, format_missing

ALL = {"qemu-system-x86_64", "qemu-img", "wg", "wireguard-go", "dnsmasq", "nft", "ip"}


def _which(present: set[str]) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in present else None


def test_ready_host() -> None:
    assert check(_which(ALL), lambda path: True, lambda: 0) == []
    assert format_missing([]) == ""


def test_everything_missing_is_named_with_how() -> None:
    missing = check(_which(set()), lambda path: False, lambda: 1000, kernel_release="6.1.0")
    whats = [item.what for item in missing]
    assert whats[:2] == ["root", "/dev/net/tun"]
    assert "wireguard-go or the wireguard kernel module" in whats
    how = {item.what: item.how for item in missing}
    assert how["dnsmasq"] == "apt-get install dnsmasq-base"
    assert how["QEMU (qemu-system-x86_64)"] == "apt-get install qemu-system-x86"
    assert how["qemu-img"] == "apt-get install qemu-utils"
    text = format_missing(missing)
    assert "nft (nftables): apt-get install nftables" in text and text.count("\n  - ") == 9


def test_kernel_module_replaces_wireguard_go() -> None:
    present = ALL - {"wireguard-go"}
    module = "/lib/modules/6.1.0/kernel/drivers/net/wireguard"
    assert check(_which(present), lambda path: path in {module, "/dev/net/tun"}, lambda: 0,
                 kernel_release="6.1.0") == []
    assert check(_which(present), lambda path: path == "/dev/net/tun", lambda: 0,
                 kernel_release="6.1.0") == [
        Missing("wireguard-go or the wireguard kernel module",
                "apt-get install wireguard-go wireguard-tools")]
