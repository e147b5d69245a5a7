"""A virtual BMC per lab node that speaks real IPMI 2.0 (RMCP+), built on pyghmi's Bmc.

It runs in the controller host's namespace, on 127.0.1.OCTET port 623 (OCTET: the
node's last WAN octet), so the controller reaches it as it would reach a BMC on a
management network, and it survives its node's power loss as a real BMC does.
Power off kills every process in the node's namespace at once (agent, QEMUs,
dnsmasq, …) as a power cut would; power on starts its agent again; status is
"on" while anything runs there. fence_ipmilan and ipmitool drive it unchanged.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

USERNAME = "admin"
PORT = 623
ROLE_PREFIX = "bmc-"  # the controller host's process roles: bmc-NODE
log = logging.getLogger("atwill.lab.bmc")


class PowerTarget(Protocol):
    def power_state(self) -> str: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...


class MemoryTarget:
    """A machine that is only a power state (tests of the BMC itself)."""

    def __init__(self, state: str = "on") -> None:
        self.state = state
        self.actions: list[str] = []

    def power_state(self) -> str:
        return self.state

    def power_off(self) -> None:
        self.actions.append("off")
        self.state = "off"

    def power_on(self) -> None:
        self.actions.append("on")
        self.state = "on"


class LabNodeTarget:
    """A lab node host: its namespace's processes are the machine."""

    def __init__(self, lab_name: str, directory: Path, node: str) -> None:
        self.lab_name, self.directory, self.node = lab_name, directory, node

    def _lab(self):
        from .lab import Lab

        return Lab.load(self.lab_name, self.directory)

    def power_state(self) -> str:
        return "on" if self._lab().namespace(self.node).pids() else "off"

    def power_off(self) -> None:
        killed = self._lab().kill_node(self.node)
        log.warning("power off %s: %d processes killed", self.node, len(killed))

    def power_on(self) -> None:
        lab = self._lab()
        if not lab.namespace(self.node).pids():
            _forget_dead_agent(Path(lab.host(self.node).state_dir))
            lab.start_node(self.node)
            log.warning("power on %s: agent started", self.node)


def _forget_dead_agent(state_dir: Path) -> None:
    """Drop the agent's pidfile when its process is gone or a zombie.

    A machine that lost power lost its process table too; here an agent killed by
    the BMC stays a zombie until the process that started it reaps it, and the new
    agent would take that for a live one and refuse to start.
    """
    pidfile = state_dir / "agent.pid"
    try:
        pid = int(pidfile.read_text().strip())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        pidfile.unlink(missing_ok=True)


def _reap_forever(interval: float = 0.5) -> None:
    """Collect the agents this BMC started once they die (no zombies of ours)."""
    from . import processes

    while True:
        try:
            processes.reap()
        except KeyError:  # reaped by the other thread at the same moment
            pass
        time.sleep(interval)


def make_bmc(target: PowerTarget, address: str, port: int, username: str, password: str):
    """A listening IPMI BMC acting on `target` (serve it with .listen())."""
    from pyghmi.ipmi import bmc

    class VirtualBmc(bmc.Bmc):
        def get_power_state(self) -> str:
            return target.power_state()

        def power_off(self) -> None:
            target.power_off()

        def power_shutdown(self) -> None:  # ACPI soft-off: a lab node has no guest OS to ask
            target.power_off()

        def power_on(self) -> None:
            target.power_on()

        def power_reset(self) -> None:
            target.power_off()
            target.power_on()

        power_cycle = power_reset

    return VirtualBmc({username: password}, port=port, address=address)


# The lab's side: one BMC process per node, recorded on the controller host ------------
def address(octet: int) -> str:
    return f"127.0.1.{octet}"


def password(directory: Path) -> str:
    """The lab's BMC password (DIR/bmc-password, 0600), made on first use."""
    path = directory / "bmc-password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(12))
    return path.read_text().strip()


def fence_options(directory: Path, octet: int) -> dict[str, str]:
    """fence_ipmilan's options for the node's virtual BMC."""
    return {"ip": address(octet), "ipport": str(PORT), "username": USERNAME,
            "password": password(directory), "lanplus": "1"}


def command(*args: str) -> list[str]:
    """The argv of a BMC process (-c, not -m: atwill.lab imports this module first)."""
    return [sys.executable, "-c", "from atwill.lab.bmc import main; main()", *args]


def start(lab, node: str) -> None:
    """Start the node's BMC in the controller host's namespace and record it there."""
    from . import hosts, processes

    ctl, host = lab.state.controller, lab.host(node)
    password(lab.directory)
    octet = int(host.ip.rsplit(".", 1)[1])
    argv = command("--lab", lab.name, "--dir", str(lab.directory), "--node", node,
                   "--address", address(octet))
    proc = processes.spawn(hosts.namespace(ctl), argv, lab.directory / f"bmc-{node}.log")
    ctl.processes[ROLE_PREFIX + node] = proc
    lab.state.save()


def stop(lab, node: str) -> None:
    """Stop the node's BMC, if it has one."""
    from . import processes

    ctl = lab.state.controller
    proc = ctl.processes.pop(ROLE_PREFIX + node, None)
    if proc is not None:
        processes.stop(proc, timeout=5)
        lab.state.save()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A lab node's virtual IPMI BMC.")
    parser.add_argument("--dir", required=True, type=Path, help="Where bmc-password is.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--lab", help="The lab's name (with --node).")
    parser.add_argument("--node", help="The lab node this BMC powers.")
    parser.add_argument("--memory", action="store_true",
                        help="Power nothing: only remember the state (tests).")
    args = parser.parse_args(argv)
    if not args.memory and not (args.lab and args.node):
        parser.error("--lab and --node, or --memory")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    target: PowerTarget = (MemoryTarget() if args.memory
                           else LabNodeTarget(args.lab, args.dir, args.node))
    bmc = make_bmc(target, args.address, args.port, USERNAME, password(args.dir))
    threading.Thread(target=_reap_forever, daemon=True).start()
    log.warning("virtual BMC of %s on %s:%d", args.node or "memory", args.address, args.port)
    bmc.listen()


if __name__ == "__main__":
    main()
