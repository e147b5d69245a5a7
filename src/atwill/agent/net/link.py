"""Network interfaces, addresses and sysctls through `ip` and /proc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atwill.hostlib.run import HostCommandError, run


def show(ifname: str | None = None) -> list[dict[str, Any]]:
    """Every interface (or one), in `ip -d -j link` form; [] if it is missing."""
    args = ["ip", "-d", "-j", "link", "show"] + (["dev", ifname] if ifname else [])
    done = run(args, check=False)
    if done.returncode != 0:
        return []
    result: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return result


def exists(ifname: str) -> bool:
    """Whether the interface exists."""
    return Path(f"/sys/class/net/{ifname}").exists()


def kind(ifname: str) -> str | None:
    """The interface's link kind (bridge, vxlan, veth…), or None."""
    links = show(ifname)
    return links[0].get("linkinfo", {}).get("info_kind") if links else None


def add_bridge(ifname: str, mac: str, mtu: int) -> None:
    """Create a bridge with a fixed MAC, no STP, br_netfilter on, and bring it up."""
    run(["ip", "link", "add", ifname, "address", mac, "mtu", str(mtu), "type", "bridge",
         "stp_state", "0", "forward_delay", "0", "nf_call_iptables", "1",
         "nf_call_ip6tables", "1"])


def add_vxlan(ifname: str, vni: int, port: int, mtu: int, local: str | None) -> None:
    """Create a VXLAN device with no learning and no multicast group."""
    args = ["ip", "link", "add", ifname, "mtu", str(mtu), "type", "vxlan", "id", str(vni),
            "dstport", str(port), "nolearning"]
    run(args + (["local", local] if local else []))


def delete(ifname: str) -> None:
    """Delete an interface if it exists."""
    if exists(ifname):
        run(["ip", "link", "del", ifname], check=False)


def set_up(ifname: str) -> None:
    """Bring an interface up."""
    run(["ip", "link", "set", ifname, "up"])


def set_down(ifname: str) -> None:
    """Switch an interface off (if it exists)."""
    run(["ip", "link", "set", ifname, "down"], check=False)


def is_up(ifname: str) -> bool:
    """Whether the interface is administratively up (IFF_UP in its flags)."""
    try:
        return bool(int(Path(f"/sys/class/net/{ifname}/flags").read_text(), 16) & 0x1)
    except (OSError, ValueError):
        return False


def set_mtu(ifname: str, mtu: int) -> None:
    """Set an interface's MTU."""
    run(["ip", "link", "set", ifname, "mtu", str(mtu)])


def set_address(ifname: str, mac: str) -> None:
    """Set an interface's MAC."""
    run(["ip", "link", "set", ifname, "address", mac])


def set_master(ifname: str, master: str) -> None:
    """Enslave an interface to a bridge."""
    run(["ip", "link", "set", ifname, "master", master])


def set_nomaster(ifname: str) -> None:
    """Take an interface off its bridge."""
    run(["ip", "link", "set", ifname, "nomaster"], check=False)


def master(ifname: str) -> str | None:
    """The bridge an interface is on, or None."""
    try:
        return Path(f"/sys/class/net/{ifname}/master").resolve().name
    except OSError:
        return None


def slaves(bridge: str) -> list[str]:
    """The interfaces on a bridge."""
    try:
        return sorted(p.name for p in Path(f"/sys/class/net/{bridge}/brif").iterdir())
    except OSError:
        return []


def addresses(ifname: str) -> set[str]:
    """The interface's addresses as 'ip/prefix'."""
    done = run(["ip", "-j", "addr", "show", "dev", ifname], check=False)
    if done.returncode != 0:
        return set()
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(done.stdout or "[]")
            for a in link.get("addr_info", [])
            if not a["local"].startswith("fe80:")}


def add_address(ifname: str, address: str) -> None:
    """Add an address without its prefix route (routes go in the domain's table)."""
    try:
        run(["ip", "addr", "add", address, "dev", ifname, "noprefixroute"])
    except HostCommandError as exc:
        if "File exists" not in exc.stderr:
            raise


def del_address(ifname: str, address: str) -> None:
    """Remove an address if present."""
    run(["ip", "addr", "del", address, "dev", ifname], check=False)


def sysctl(key: str, value: str) -> None:
    """Set a sysctl if it differs."""
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.read_text().strip() != value:
        path.write_text(value)
