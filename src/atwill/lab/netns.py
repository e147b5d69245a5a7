"""Tiny typed wrappers over `ip` and `tc`: network namespaces, veth, bridges, netem."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence

TIMEOUT = 30
NO_NETEM = ("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set), so WAN "
            "delay and loss cannot be emulated here; run the lab without them")


class NetError(RuntimeError):
    """An `ip` or `tc` command failed; the message carries its stderr."""


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


@functools.cache
def netem_supported() -> bool:
    """Whether `tc ... netem` works, tried (once) on the loopback of a throwaway namespace."""
    probe = Namespace(f"awl-probe-{os.getpid()}")
    probe.create()
    try:
        proc = run(["tc", "-n", probe.name, "qdisc", "add", "dev", "lo", "root", "netem",
                    "delay", "1ms"], check=False)
        return proc.returncode == 0
    finally:
        probe.delete()


def list_namespaces() -> set[str]:
    """Names of every network namespace known to `ip netns`."""
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


class Namespace:
    """One named network namespace; every method is one `ip`/`tc` action inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def exists(self) -> bool:
        return self.name in list_namespaces()

    def create(self) -> None:
        """Create the namespace and bring its loopback up."""
        run(["ip", "netns", "add", self.name])
        self.link_up("lo")

    def delete(self) -> None:
        """Delete the namespace (its interfaces go with it); absent is fine."""
        if self.exists():
            run(["ip", "netns", "delete", self.name])

    def sysctl(self, key: str, value: str) -> None:
        """Set a (per-namespace) sysctl."""
        run(self.argv(["sysctl", "-q", "-w", f"{key}={value}"]))

    def pids(self) -> list[int]:
        """Every process whose network namespace is this one."""
        if not self.exists():
            return []
        out = run(["ip", "netns", "pids", self.name]).stdout
        return [int(word) for word in out.split()]

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """The command line that runs `cmd` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["ip", "-n", self.name, *args], check=check)

    def link_up(self, dev: str) -> None:
        """Set an interface up."""
        self.ip("link", "set", dev, "up")

    def link_down(self, dev: str) -> None:
        """Set an interface down."""
        self.ip("link", "set", dev, "down")

    def link_is_up(self, dev: str) -> bool:
        """Whether the interface is administratively up."""
        flags = self.ip("-o", "link", "show", dev).stdout.split("<", 1)[1].split(">", 1)[0]
        return "UP" in flags.split(",")

    def link_exists(self, dev: str) -> bool:
        """Whether an interface of that name is in the namespace."""
        return self.ip("link", "show", "dev", dev, check=False).returncode == 0

    def delete_link(self, dev: str) -> None:
        """Delete an interface (a veth takes its peer with it, at once); absent is fine."""
        if self.link_exists(dev):
            self.ip("link", "delete", "dev", dev, check=False)

    def links(self) -> list[str]:
        """Names of the interfaces in the namespace."""
        out = self.ip("-o", "link", "show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def add_bridge(self, name: str) -> None:
        """Create a bridge and bring it up."""
        self.ip("link", "add", name, "type", "bridge")
        self.link_up(name)

    def add_veth(self, name: str, peer: str, peer_ns: Namespace) -> None:
        """Create a veth pair with `name` here and `peer` directly in `peer_ns`.

        Both ends are born inside lab namespaces, so nothing ever appears in the
        root namespace, not even for a moment.
        """
        self.ip("link", "add", name, "type", "veth", "peer", "name", peer,
                "netns", peer_ns.name)

    def attach(self, dev: str, bridge: str) -> None:
        """Make `dev` a port of `bridge`."""
        self.ip("link", "set", dev, "master", bridge)

    def detach(self, dev: str) -> None:
        """Take `dev` out of whatever bridge it is a port of."""
        self.ip("link", "set", dev, "nomaster")

    def gso_max_segs(self, dev: str, segs: int) -> None:
        """Cap the segments per GSO packet on `dev` (1: the stack sends single packets)."""
        self.ip("link", "set", dev, "gso_max_segs", str(segs))

    def add_address(self, dev: str, cidr: str) -> None:
        """Add an IPv4 address (CIDR notation) to an interface."""
        self.ip("address", "add", cidr, "dev", dev)

    def netem(self, dev: str, delay: str | None, loss: str | None) -> None:
        """Delay and/or drop what leaves `dev` (egress only, as netem works)."""
        args = ["limit", "100000"]
        if delay:
            args += ["delay", delay]
        if loss:
            args += ["loss", loss]
        proc = run(["tc", "-n", self.name, "qdisc", "replace", "dev", dev, "root", "netem",
                    *args], check=False)
        if "kind is unknown" in proc.stderr:
            raise NetError(NO_NETEM)
        if proc.returncode != 0:
            raise NetError(f"tc netem on {dev} in {self.name}: {proc.stderr.strip()}")

    def clear_netem(self, dev: str) -> None:
        """Remove the root qdisc from `dev` (absent is fine)."""
        run(["tc", "-n", self.name, "qdisc", "del", "dev", dev, "root"], check=False)

    def qdisc(self, dev: str) -> str:
        """The root qdisc of `dev` as `tc qdisc show` prints it."""
        return run(["tc", "-n", self.name, "qdisc", "show", "dev", dev, "root"]).stdout.strip()
