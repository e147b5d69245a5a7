"""A WireGuard tunnel made by hand between two lab namespaces: wireguard-go, `wg set`, `ip`.

It is the baseline atwill's overlay is compared with, so it is built the way an
operator would: one wireguard-go per side, keys, a listen port, one peer each
with the other's WAN endpoint, an address on a private /24 and the same MTU
atwill uses. Everything it makes is undone on exit, whatever happened.
"""

from __future__ import annotations

import os
import secrets
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from atwill.hostlib.overlay.wireguard import SOCKET_DIR, generate_keypair

from ..lab import commands, processes
from ..lab.netns import Namespace

PORT = 52820
MTU = 1420  # atwill's: the lab's 1500-byte underlay less WIREGUARD_OVERHEAD.
SOCKET_TIMEOUT = 10.0


@dataclass
class Side:
    """One end of the tunnel: its namespace, WAN address, interface and tunnel address."""

    ns: Namespace
    wan_ip: str
    ifname: str
    address: str
    private: str = ""
    public: str = ""


def _wait_for_socket(side: Side, proc: processes.Process, log: Path) -> None:
    sock = SOCKET_DIR / f"{side.ifname}.sock"
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while not sock.exists():
        if not processes.alive(proc) or time.monotonic() > deadline:
            raise RuntimeError(f"wireguard-go {side.ifname} in {side.ns.name} did not come "
                               f"up: {log.read_text(errors='replace')[-500:]}")
        time.sleep(0.02)


def _remove(side: Side, proc: processes.Process) -> None:
    """Stop wireguard-go by PID; then make sure its interface and socket are gone."""
    processes.stop(proc, timeout=5)
    if side.ns.exists():
        side.ns.ip("link", "del", "dev", side.ifname, check=False)
    (SOCKET_DIR / f"{side.ifname}.sock").unlink(missing_ok=True)


def _start(side: Side, workdir: Path, stack: ExitStack) -> None:
    log = workdir / f"{side.ifname}.log"
    env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
    proc = processes.spawn(side.ns, ["wireguard-go", "-f", side.ifname], log, env=env)
    stack.callback(_remove, side, proc)
    _wait_for_socket(side, proc, log)


def _configure(side: Side, peer: Side, workdir: Path) -> None:
    key = workdir / f"{side.ifname}.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(side.private + "\n")
    commands.run_in(side.ns, ["wg", "set", side.ifname, "listen-port", str(PORT),
                              "private-key", str(key), "peer", peer.public,
                              "allowed-ips", f"{peer.address}/32",
                              "endpoint", f"{peer.wan_ip}:{PORT}"])
    side.ns.add_address(side.ifname, f"{side.address}/24")
    side.ns.ip("link", "set", "dev", side.ifname, "mtu", str(MTU), "up")


def tunnel(stack: ExitStack, workdir: Path, a: tuple[Namespace, str],
           b: tuple[Namespace, str]) -> tuple[str, str]:
    """Build the tunnel between (namespace, WAN address) a and b; undone when stack closes.

    Returns the tunnel addresses of a and b (10.250.X.1 and .2, X random).
    """
    subnet = f"10.250.{secrets.randbelow(254) + 1}"
    sides = [Side(ns, wan_ip, f"bwg-{secrets.token_hex(4)}", f"{subnet}.{index}")
             for index, (ns, wan_ip) in enumerate((a, b), start=1)]
    for side in sides:
        side.private, side.public = generate_keypair()
        _start(side, workdir, stack)
    _configure(sides[0], sides[1], workdir)
    _configure(sides[1], sides[0], workdir)
    return sides[0].address, sides[1].address
