"""The per-node data plane: converges the host to a HostPlan, and takes it all down again."""

from __future__ import annotations

import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor import tap
from atwill.agent.net import (
    bridge,
    link,
    names,
    nft,
    nft_inet,
    routing,
    sanitize,
    secgroups,
    vxlan,
)
from atwill.agent.net.dnsmasq import Dnsmasq
from atwill.agent.net.layout import Layout, NetLayout, build
from atwill.agent.net.metadata import MetadataService
from atwill.agent.net.model import HostPlan
from atwill.hostlib.run import Reverter

log = logging.getLogger(__name__)
METADATA_ADDRESS = f"{names.METADATA_IP}/32"


class PlaneError(RuntimeError):
    """Some pieces of the data plane failed (the others were applied); retried next time."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("data plane pieces failed: " + "; ".join(
            f"{k}: {v}" for k, v in sorted(errors.items())))
        self.errors = errors


class DataPlane:
    """Bridges, VXLAN, DHCP, metadata, routing and nftables of one node, under state_dir."""

    def __init__(self, state_dir: Path, node: str, controller_url: str | None = None,
                 ca: Path | None = None) -> None:
        self.state_dir = state_dir
        self.node = node
        self.metadata = MetadataService(state_dir / "metadata", controller_url, ca)

    def apply(self, plan: HostPlan) -> dict[str, str]:
        """Make the host match the plan: create, repair and remove (only what we named).

        Each piece (a network, a table, a port's rules, routing, NAT addresses, one
        network's DHCP, metadata) is applied on its own: a failure is recorded and the
        others still converge. Raises PlaneError naming the failed pieces at the end, so
        the caller logs it and the next reconcile retries them."""
        for directory in (self.state_dir, self.state_dir / "dhcp"):
            # dnsmasq's and the metadata service's users pass through to their own
            # directories (0750 to their group); nothing here can be listed by them.
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o711)
        plan, refused = sanitize.clean(plan)
        for problem in refused:
            log.warning("desired state value refused: %s", problem)
        errors: dict[str, str] = {}
        layout = build(plan, self._state("tables.json", {}))
        self._save("tables.json", {d.id: d.offset for d in layout.domains.values()})
        self._piece(errors, "sysctl", self._sysctls)
        for net in layout.networks.values():
            self._piece(errors, f"network {net.network.id}", self._network_alone, net,
                        plan.vtep_local)
        refused_ports: set[str] = set()
        for ruleset in (nft.render_bridge(plan, layout), nft_inet.render_inet(plan, layout)):
            failed = self._piece(errors, f"nft {ruleset.family}", nft.apply, ruleset)
            if failed is None:  # the whole table was refused: no secured port is admitted
                refused_ports |= {p.id for p, _ in layout.ports if p.port_security}
            for port_id, message in (failed or {}).items():
                errors[f"port {port_id} rules ({ruleset.family})"] = message
                refused_ports.add(port_id)
        self._piece(errors, "ports", self._ports, layout, refused_ports)
        self._piece(errors, "stale links", self._remove_stale_links, layout)
        self._piece(errors, "routing", self._routing, plan, layout)
        self._piece(errors, "floating ips", self._floating, plan, layout)
        self._dhcp(plan, layout, errors)
        self._piece(errors, "metadata", self._metadata, plan, layout)
        self._save("errors.json", {"errors": errors, "refused": refused})
        if errors:
            raise PlaneError(errors)
        return errors

    def _piece(self, errors: dict[str, str], name: str, step: Any, *args: Any) -> Any:
        """Run one piece; a failure is recorded under name (and logged), not raised."""
        try:
            result = step(*args)
            return {} if result is None else result
        except Exception as exc:  # noqa: BLE001 - one piece must not stop the others
            log.warning("data plane piece %s failed: %s", name, exc)
            errors[name] = f"{type(exc).__name__}: {exc}"[:500]
            return None

    def _sysctls(self) -> None:
        link.sysctl("net.ipv4.ip_forward", "1")
        # The kernel's own answers (ICMP echo replies, resets) carry the request's mark, so
        # they are routed in the requester's domain table, not the main one.
        link.sysctl("net.ipv4.fwmark_reflect", "1")

    def _network_alone(self, net: NetLayout, local: str | None) -> None:
        with Reverter() as revert:
            self._network(net, local, revert)

    def teardown(self) -> None:
        """Remove everything apply made."""
        self.metadata.stop()
        for directory in sorted((self.state_dir / "dhcp").glob("*")):
            Dnsmasq(directory).stop()
        nft.delete("inet")
        nft.delete("bridge")
        for rule in routing.rules():
            routing.rule_del(*rule)
        for table in routing.used_tables():
            routing.flush(table)
        self._floating_converge(None, set())
        for item in link.show():
            if names.ours(self.node, item["ifname"]) and item["ifname"].startswith("av"):
                link.delete(item["ifname"])
        for item in link.show():
            if names.ours(self.node, item["ifname"]):
                link.delete(item["ifname"])
        for name in ("tables.json", "floating.json", "errors.json"):
            (self.state_dir / name).unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """What exists now: our links, daemons, tables and rules."""
        links = sorted(i["ifname"] for i in link.show() if names.ours(self.node, i["ifname"]))
        dhcp = {d.name: Dnsmasq(d).pid() for d in sorted((self.state_dir / "dhcp").glob("*"))}
        return {"links": links, "dnsmasq": dhcp, "metadata_pid": self.metadata.pid(),
                "nft": {f: nft.present(f) for f in ("bridge", "inet")},
                "rules": len(routing.rules()), "floating": self._state("floating.json", []),
                "errors": self._state("errors.json", {}).get("errors", {})}

    def _network(self, net: NetLayout, local: str | None, revert: Reverter) -> None:
        network = net.network
        current = link.show(net.bridge)
        if current and current[0].get("linkinfo", {}).get("info_kind") != "bridge":
            link.delete(net.bridge)
            current = []
        if not current:
            link.add_bridge(net.bridge, net.mac, network.mtu)
            revert.add(lambda: link.delete(net.bridge))
        else:
            if current[0].get("address") != net.mac:
                link.set_address(net.bridge, net.mac)
            if current[0].get("mtu") != network.mtu:
                link.set_mtu(net.bridge, network.mtu)
        link.set_up(net.bridge)
        want = set(net.addresses) | {METADATA_ADDRESS}
        have = link.addresses(net.bridge)
        for address in sorted(have - want):
            link.del_address(net.bridge, address)
        for address in sorted(want - have):
            link.add_address(net.bridge, address)
        self._vxlan(net, local, revert)
        wanted = {ip: p.mac.lower() for p in network.remote_ports for ip in p.ips}
        for ip, mac in bridge.neighbours(net.bridge).items():
            if wanted.get(ip) != mac:
                bridge.neighbour_del(net.bridge, ip)
        for ip, mac in sorted(wanted.items()):
            bridge.neighbour_set(net.bridge, ip, mac)

    def _vxlan(self, net: NetLayout, local: str | None, revert: Reverter) -> None:
        network = net.network
        current = link.show(net.vxlan)
        data = current[0].get("linkinfo", {}).get("info_data", {}) if current else {}
        if current and (data.get("id") != network.vni or data.get("port") != names.VXLAN_PORT
                        or (local is not None and data.get("local") != local)):
            link.delete(net.vxlan)
            current = []
        if not current:
            link.add_vxlan(net.vxlan, network.vni, names.VXLAN_PORT, network.mtu, local)
            revert.add(lambda: link.delete(net.vxlan))
        elif current[0].get("mtu") != network.mtu:
            link.set_mtu(net.vxlan, network.mtu)
        if link.master(net.vxlan) != net.bridge:
            link.set_master(net.vxlan, net.bridge)
        bridge.set_port(net.vxlan, learning=False)
        link.set_up(net.vxlan)
        vxlan.converge(net.vxlan, network)
        remote = {p.mac.lower() for p in network.remote_ports}
        for entry in bridge.fdb(net.vxlan):
            if "master" in entry and "static" in entry.get("state", "") \
                    and entry["mac"].lower() not in remote:
                bridge.fdb_del(net.vxlan, entry["mac"], master=True)
        for mac in sorted(remote):
            bridge.fdb_static(net.vxlan, mac)

    def _ports(self, layout: Layout, refused: set[str]) -> None:
        # A port's tap is made down (hypervisor.tap.create) and switched on here only once
        # it is on its bridge, behind its rules (nft is applied before): up on no bridge
        # it would be an interface of the host's own stack, which the inet table lets
        # through. So a secured port whose rules were refused, and a tap taken off its
        # bridge, is switched off first.
        plugged: dict[str, set[str]] = {n.bridge: {n.vxlan} for n in layout.networks.values()}
        for port, net in layout.ports:
            if port.id in refused:
                if link.is_up(port.device):
                    link.set_down(port.device)
                continue
            plugged[net.bridge].add(port.device)
            if not link.exists(port.device):
                log.info("port %s: device %s is not there yet", port.id, port.device)
                continue
            if link.master(port.device) != net.bridge:
                link.set_master(port.device, net.bridge)
            link.set_mtu(port.device, net.network.mtu)
            link.set_up(port.device)
        for bridge_name, wanted in plugged.items():
            for device in link.slaves(bridge_name):
                if device not in wanted:
                    if device.startswith(tap.PREFIX) and link.is_up(device):
                        link.set_down(device)  # a guest's: not into the host's stack
                    link.set_nomaster(device)

    def _remove_stale_links(self, layout: Layout) -> None:
        wanted = {n for net in layout.networks.values() for n in (net.bridge, net.vxlan)}
        for item in link.show():
            name = item["ifname"]
            if names.ours(self.node, name) and name not in wanted:
                link.delete(name)

    def _routing(self, plan: HostPlan, layout: Layout) -> None:
        domains = list(layout.domains.values())
        want = routing.desired_rules(domains)
        have = routing.rules()
        for rule in sorted(have - want):
            routing.rule_del(*rule)
        for rule in sorted(want - have):
            routing.rule_add(*rule)
        sources = {str(ipaddress.ip_network(address, strict=False)): address.split("/")[0]
                   for net in layout.networks.values() for address in net.addresses}
        for domain in domains:
            routing.converge_table(domain.table,
                                   routing.desired_routes(domain, plan.external, sources))
        for table in routing.used_tables() - {d.table for d in domains}:
            routing.flush(table)

    def _floating(self, plan: HostPlan, layout: Layout) -> None:
        ext = plan.external
        fips = {f.floating_ip for d in layout.domains.values() if d.router
                for f in d.router.floating_ips}
        self._floating_converge(ext.bridge if ext else None, fips if ext else set())

    def _floating_converge(self, ext_bridge: str | None, fips: set[str]) -> None:
        # Floating IPs are added to the external bridge as /32s so this node answers ARP.
        old = self._state("floating.json", {})
        for address, dev in old.items():
            if address not in fips or dev != ext_bridge:
                link.del_address(dev, f"{address}/32")
        if ext_bridge is not None:
            have = link.addresses(ext_bridge)
            for address in sorted(fips):
                if f"{address}/32" not in have:
                    link.add_address(ext_bridge, f"{address}/32")
        self._save("floating.json", {a: ext_bridge for a in sorted(fips)})

    def _dhcp(self, plan: HostPlan, layout: Layout, errors: dict[str, str]) -> None:
        root = self.state_dir / "dhcp"
        wanted = set()
        for net in layout.networks.values():
            if not any(s.enable_dhcp and s.ip_version == 4 for s in net.network.subnets):
                continue
            directory = root / secgroups.short(net.network.id)
            wanted.add(directory)
            ports = [p for p, n in layout.ports if n is net]
            self._piece(errors, f"dhcp {net.network.id}", Dnsmasq(directory).converge,
                        net.bridge, net.network, ports)
        for directory in sorted(root.glob("*")) if root.exists() else []:
            if directory not in wanted:
                self._piece(errors, f"dhcp stop {directory.name}", Dnsmasq(directory).stop)

    def _metadata(self, plan: HostPlan, layout: Layout) -> None:
        entries: dict[str, dict[str, Any]] = {}
        for port, net in layout.ports:
            entries.setdefault(net.bridge, {})
            for fixed in port.fixed_ips:
                entry = dict(plan.metadata.get(fixed.ip_address, {}))
                if entry.get("port_id", port.id) != port.id:
                    continue  # another port's, on an overlapping network
                if entry:
                    entry.setdefault("local_ipv4", fixed.ip_address)
                    # Answers are bound to the port: its MAC is checked by the server too.
                    entry["mac"] = port.mac.lower()
                    entries[net.bridge][fixed.ip_address] = entry
        self.metadata.converge(entries)

    def _state(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.state_dir / name).read_text())
        except (OSError, ValueError):
            return default

    def _save(self, name: str, value: Any) -> None:
        tmp = self.state_dir / f"{name}.tmp"
        tmp.write_text(json.dumps(value, sort_keys=True))
        tmp.replace(self.state_dir / name)
