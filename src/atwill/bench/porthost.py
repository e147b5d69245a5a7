"""Port hosts for benchmarks: a namespace plugged into a node exactly where a VM's tap goes.

The veth pair is born inside the port host (eth0 with the port's MAC, and a spare end);
`plug` moves the spare end into the node's namespace under the port's device name
(tap + 12 hex of the port id) in one `ip` call, so the device appears at once, as a
tap does when QEMU opens it. The agent's data plane then plugs it into the
network's bridge like any tap. Deleting the namespace removes both ends.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

from ..lab.netns import Namespace, run

SPARE = "spare0"


def random_mac() -> str:
    """A MAC in OpenStack's fa:16:3e prefix."""
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


class Probe:
    """A probe module run in a namespace: waits for its "started" line, then its JSON."""

    def __init__(self, ns: Namespace, module: str, *args: str) -> None:
        argv = ns.argv([sys.executable, "-m", f"atwill.bench.{module}", *args])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("started "):
            self.stop()
            raise RuntimeError(f"probe {module} {' '.join(args)} did not start: "
                               f"{line}{self.proc.stderr.read() if self.proc.stderr else ''}")
        self.started = float(line.split()[1])

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        if self.proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"probe failed ({self.proc.returncode}): {err[-500:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class PortHost:
    """One port host namespace; everything it makes is undone by `stack`."""

    def __init__(self, stack: ExitStack, name: str, mac: str) -> None:
        self.ns, self.mac = Namespace(name), mac
        self.ns.create()
        stack.callback(self._destroy)
        self.ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", SPARE)
        self.ns.ip("link", "set", "eth0", "address", mac)
        self.ns.link_up("eth0")
        self.ip: str | None = None

    def plug(self, node: Namespace, device: str) -> None:
        """Move the spare end into the node under the port's device name."""
        self.ns.ip("link", "set", SPARE, "netns", node.name, "name", device)

    def dhcp(self, timeout: float = 30) -> Probe:
        """A DHCP probe on eth0, already sending."""
        return Probe(self.ns, "dhcpprobe", "eth0", self.mac, str(timeout))

    def configure(self, lease: dict[str, Any]) -> None:
        """Take the leased address and MTU, as a guest's DHCP client would."""
        self.ip = lease["ip"]
        self.ns.add_address("eth0", f"{lease['ip']}/{lease['prefix']}")
        if lease.get("mtu"):
            self.ns.ip("link", "set", "eth0", "mtu", str(lease["mtu"]))

    def _destroy(self) -> None:
        # Only our probes and iperf3 ever run in this namespace: each is ours, by PID.
        for pid in self.ns.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.ns.delete()


def wait_plumbed(node: Namespace, device: str, timeout: float = 30,
                 interval: float = 0.02) -> float:
    """Monotonic time at which `device` is up and a port of a bridge in `node`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run(["ip", "-n", node.name, "-j", "link", "show", "dev", device],
                  check=False).stdout
        links = json.loads(out) if out.strip() else []
        if links and links[0].get("master") and "UP" in links[0].get("flags", []):
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{device} not plugged into a bridge in {node.name} after {timeout:g} s")
