"""One dnsmasq per network serving static DHCP leases to this node's ports only."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atwill.agent.net import sanitize
from atwill.agent.net.model import Network, Port
from atwill.agent.net.names import METADATA_IP
from atwill.hostlib import accounts
from atwill.hostlib.run import ChildProcess

LEASE_SECONDS = 86400
log = logging.getLogger("atwill.agent.dnsmasq")
_WARNED: set[Path] = set()


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _valid(check: Callable[[Any], Any], value: Any, skipped: list[str] | None) -> Any:
    """The checked value, or None (noted in skipped): nothing unchecked reaches a file."""
    try:
        return check(value)
    except ValueError as exc:
        if skipped is not None:
            skipped.append(str(exc))
        return None


def hosts_file(ports: list[Port], network: Network, skipped: list[str] | None = None) -> str:
    """`mac,ip,hostname` lines for the network's local ports (IPv4 DHCP subnets)."""
    dhcp = {s.id for s in network.subnets if s.enable_dhcp and s.ip_version == 4}
    lines = []
    for port in sorted(ports, key=lambda p: p.mac):
        mac = _valid(sanitize.mac, port.mac, skipped)
        for fixed in port.fixed_ips:
            ip = _valid(sanitize.ip, fixed.ip_address, skipped)
            if fixed.subnet_id in dhcp and mac and ip and ":" not in ip:
                name = port.hostname or ""
                if not _HOSTNAME.fullmatch(name):
                    name = f"host-{ip.replace('.', '-')}"
                lines.append(f"{mac},{ip},{name}\n")
                break
    return "".join(lines)


def _tag(index: int) -> str:
    return f"s{index}"


def _route(route: tuple[str, str]) -> tuple[str, str]:
    return sanitize.prefix(route[0]), sanitize.ip(route[1])


def opts_file(network: Network, skipped: list[str] | None = None) -> str:
    """Per-subnet options: router, MTU, DNS servers and classless static routes."""
    lines = []
    for index, subnet in enumerate(network.subnets):
        if subnet.ip_version != 4 or not subnet.enable_dhcp:
            continue
        tag = f"tag:{_tag(index)}"
        gateway = subnet.gateway_ip and _valid(sanitize.ip, subnet.gateway_ip, skipped)
        lines.append(f"{tag},option:router{',' + gateway if gateway else ''}")
        lines.append(f"{tag},option:mtu,{int(network.mtu)}")
        servers = [s for s in (_valid(sanitize.ip, d, skipped) for d in subnet.dns_nameservers)
                   if s and ":" not in s]
        if servers:
            lines.append(f"{tag},option:dns-server,{','.join(servers)}")
        # With option 121 clients ignore option 3, so the default route is repeated here.
        routes = [(f"{METADATA_IP}/32", gateway or "0.0.0.0")]
        for pair in subnet.host_routes:
            route = _valid(_route, pair, skipped)
            if route and ":" not in route[0] + route[1]:
                routes.append(route)
        if gateway:
            routes.append(("0.0.0.0/0", gateway))
        lines.append(f"{tag},option:classless-static-route,"
                     + ",".join(f"{d},{n}" for d, n in routes))
    return "".join(f"{line}\n" for line in lines)


def arguments(directory: Path, bridge: str, network: Network,
              user: str | None = None) -> list[str]:
    """dnsmasq's command line for one network on one bridge. With user, dnsmasq drops
    root once its sockets, pid and lease files are open (keeping only what DHCP needs)."""
    owner = user or "root"
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0", "--no-hosts", "--no-resolv", "--bind-interfaces",
            f"--interface={bridge}", "--except-interface=lo", "--dhcp-authoritative",
            f"--user={owner}", f"--group={owner}", "--log-dhcp", "--log-facility=-",
            f"--pid-file={directory / 'dnsmasq.pid'}",
            f"--dhcp-hostsfile={directory / 'hosts'}", f"--dhcp-optsfile={directory / 'opts'}",
            f"--dhcp-leasefile={directory / 'leases'}"]
    for index, subnet in enumerate(network.subnets):
        if subnet.ip_version != 4 or not subnet.enable_dhcp:
            continue
        net = ipaddress.ip_network(subnet.cidr, strict=False)
        args.append(f"--dhcp-range=set:{_tag(index)},{net.network_address},static,"
                    f"{net.netmask},{LEASE_SECONDS}s")
        if not subnet.gateway_ip:
            # The bridge has no address in such a subnet: serve it from the bridge anyway.
            args.append(f"--shared-network={bridge},{net.network_address}")
    return args


class Dnsmasq:
    """The DHCP server of one network, its files under directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.child = ChildProcess(directory / "pid", f"--dhcp-hostsfile={directory / 'hosts'}")

    def pid(self) -> int | None:
        """Our dnsmasq's PID, or None."""
        return self.child.pid()

    def converge(self, bridge: str, network: Network, ports: list[Port]) -> str:
        """Write the files; start, restart (new arguments) or SIGHUP (new files) as needed."""
        account = _account(self.directory)
        # Its own group reads the hosts and options files again on SIGHUP; nobody else.
        accounts.share_directory(self.directory, account)
        args = arguments(self.directory, bridge, network, account.name if account else None)
        changed = _write(self.directory / "hosts", hosts_file(ports, network))
        changed |= _write(self.directory / "opts", opts_file(network))
        new_args = _write(self.directory / "args", "\0".join(args))
        leases = self.directory / "leases"
        kept = kept_leases(leases, hosts_file(ports, network))
        pid = self.child.pid()
        # dnsmasq keeps leases in memory and re-reads only its hosts on SIGHUP: a lease of
        # a port that left (or changed address) would block its address for a whole lease
        # time, so it is dropped with a restart.
        if pid is not None and (new_args or kept is not None):
            self.child.stop()
            pid = None
        if kept is not None:
            _write(leases, kept)
        if pid is None:
            self.child.start(args, self.directory / "log")
            return "started"
        if changed:
            os.kill(pid, signal.SIGHUP)
            return "reloaded"
        return "unchanged"

    def stop(self) -> None:
        """Stop our dnsmasq by PID and remove its files."""
        self.child.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _account(directory: Path) -> accounts.Account | None:
    """dnsmasq's own account, if it can reach directory (else dnsmasq stays root)."""
    if not accounts.searchable(directory.parent):
        if directory.parent not in _WARNED:
            _WARNED.add(directory.parent)
            log.warning("dnsmasq runs as root: other users cannot pass through %s",
                        directory.parent)
        return None
    return accounts.unprivileged(accounts.DHCP_USER)


def kept_leases(leases: Path, hosts: str) -> str | None:
    """The lease file without leases the hosts file no longer gives; None if none go."""
    try:
        lines = leases.read_text().splitlines(keepends=True)
    except OSError:
        return None
    wanted = {tuple(line.split(",")[:2]) for line in hosts.splitlines() if line}
    kept = [line for line in lines
            if len(line.split()) >= 3 and tuple(line.split()[1:3]) in wanted]
    return None if len(kept) == len(lines) else "".join(kept)


def _write(path: Path, text: str) -> bool:
    """Write text if it differs; whether it did."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    accounts.publish(path, text)
    return True
