"""The server document, shaped by the requested microversion."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.microversion import Version
from ...core.policy import Credentials
from ..compute import server_volumes_state
from ..db.base import iso
from ..db.models import Instance, ServerGroupMember
from ..db.network import FloatingIP, Network, SecurityGroup
from . import ports, states


def links(base: str, collection: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{collection}/{ident}"}]


def addresses(session: Session, inst: Instance) -> dict[str, list[dict[str, Any]]]:
    """Nova's addresses: per network, the ports' fixed IPs, then the floating IPs on them."""
    fixed: dict[str, list[dict[str, Any]]] = {}
    floating: dict[str, list[dict[str, Any]]] = {}
    for port in ports.of(session, inst):
        network = session.get(Network, port.network_id)
        name = network.name if network else port.network_id
        for ip in port.fixed_ips:
            fixed.setdefault(name, []).append(_address(ip.ip_address, "fixed", port.mac_address))
        fips = session.scalars(select(FloatingIP).where(FloatingIP.port_id == port.id)
                               .order_by(FloatingIP.created_at, FloatingIP.id))
        for fip in fips:
            floating.setdefault(name, []).append(
                _address(fip.floating_ip_address, "floating", port.mac_address))
    return {name: fixed.get(name, []) + floating.get(name, [])
            for name in dict.fromkeys([*fixed, *floating])}


def _address(addr: str, kind: str, mac: str) -> dict[str, Any]:
    return {"version": 6 if ":" in addr else 4, "addr": addr, "OS-EXT-IPS:type": kind,
            "OS-EXT-IPS-MAC:mac_addr": mac}


def flavor(inst: Instance, version: Version, base: str) -> dict[str, Any]:
    snap = inst.flavor
    if version >= "2.47":
        return {"vcpus": snap["vcpus"], "ram": snap["ram"], "disk": snap["disk"],
                "ephemeral": snap.get("ephemeral", 0), "swap": snap.get("swap", 0),
                "original_name": snap["name"], "extra_specs": snap.get("extra_specs", {})}
    return {"id": snap["id"], "links": [{"rel": "bookmark",
                                         "href": f"{base}/flavors/{snap['id']}"}]}


def group_names(session: Session, inst: Instance) -> list[dict[str, str]]:
    names = []
    for port in ports.of(session, inst):
        for link in port.groups:
            group = session.get(SecurityGroup, link.security_group_id)
            if group is not None and {"name": group.name} not in names:
                names.append({"name": group.name})
    return names or [{"name": n} for n in inst.security_groups or []]


def summary(inst: Instance, base: str) -> dict[str, Any]:
    return {"id": inst.id, "name": inst.name, "links": links(base, "servers", inst.id)}


def created(inst: Instance, base: str, admin_pass: str) -> dict[str, Any]:
    """Nova's create answer: only these keys (Tempest's create_server forbids others)."""
    return {"id": inst.id, "links": links(base, "servers", inst.id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": n} for n in inst.security_groups],
            "adminPass": admin_pass}


def _common(session: Session, inst: Instance, version: Version, base: str,
            extended: bool) -> dict[str, Any]:
    """The keys every full server view has (Tempest's common_show_server)."""
    host_id = hashlib.sha224(f"{inst.project_id}{inst.node_name or ''}".encode()).hexdigest() \
        if inst.node_name else ""
    found = addresses(session, inst)
    if not extended:  # Nova's extend_address=False: version and addr only
        found = {net: [{"version": a["version"], "addr": a["addr"]} for a in items]
                 for net, items in found.items()}
    out: dict[str, Any] = {
        **summary(inst, base), "status": states.status(inst.vm_state, inst.task_state),
        "tenant_id": inst.project_id, "user_id": inst.user_id, "metadata": inst.meta or {},
        "hostId": host_id, "created": iso(inst.created_at), "updated": iso(inst.updated_at),
        "image": {"id": inst.image_id, "links": [{"rel": "bookmark",
                                                  "href": f"{base}/images/{inst.image_id}"}]}
        if inst.image_id else "",
        "flavor": flavor(inst, version, base), "addresses": found,
        "accessIPv4": "", "accessIPv6": "", "OS-DCF:diskConfig": "MANUAL", "progress": 0,
    }
    if inst.vm_state == "error" and inst.fault:
        out["fault"] = dict(inst.fault)
    return out


def partial(session: Session, inst: Instance, version: Version, base: str) -> dict[str, Any]:
    """Nova's update and rebuild answers before 2.75: the common keys and the versioned
    ones Tempest's update_server/rebuild_server name (no extended attributes)."""
    out = _common(session, inst, version, base, extended=False)
    if version >= "2.9":
        out["locked"] = inst.locked
    if version >= "2.19":
        out["description"] = inst.description
    if version >= "2.26":
        out["tags"] = list(inst.tags or [])
    if version >= "2.63":
        out["trusted_image_certificates"] = None
    if version >= "2.71":
        out["server_groups"] = server_groups(session, inst)
    if version >= "2.73":
        out["locked_reason"] = inst.locked_reason
    return out


def server_groups(session: Session, inst: Instance) -> list[str]:
    """2.71: the server group the server is in (at most one)."""
    group = session.scalar(select(ServerGroupMember.group_id).where(
        ServerGroupMember.instance_id == inst.id))
    return [group] if group else []


def detail(session: Session, inst: Instance, version: Version, base: str,
           creds: Credentials, show: bool = False) -> dict[str, Any]:
    """The full server; show: one server's view (show, update, rebuild), which from 2.71
    names its server groups where a listing does not."""
    out: dict[str, Any] = {
        **_common(session, inst, version, base, extended=True),
        "OS-EXT-AZ:availability_zone": inst.availability_zone or "nova",
        "config_drive": "True" if inst.config_drive else "", "key_name": inst.key_name,
        "OS-SRV-USG:launched_at": iso(inst.launched_at).replace("Z", ".000000")
        if inst.launched_at else None,
        "OS-SRV-USG:terminated_at": iso(inst.terminated_at),
        "security_groups": group_names(session, inst),
        "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "os-extended-volumes:volumes_attached": server_volumes_state.volumes_attached(
            session, inst, version >= "2.3"),
    }
    _versioned(out, inst, version, creds)
    if show and version >= "2.71":
        out["server_groups"] = server_groups(session, inst)
    if "host_status" in out:
        out["host_status"] = host_status(session, inst)
    return out


def host_status(session: Session, inst: Instance) -> str:
    """Nova's UP / UNKNOWN / DOWN / MAINTENANCE of the instance's node ("" without one)."""
    from ...core.ha_health import host_status as status  # noqa: PLC0415
    from ..db.models import Node  # noqa: PLC0415

    node = session.get(Node, inst.node_id) if inst.node_id else None
    if node is None:
        return ""
    # A node whose agent announced a restart does not report: UNKNOWN, as in Nova.
    return status(node.forced_down, node.enabled,
                  node.state == "up" and node.health != "restarting",
                  node.fenced_at is not None and node.fence_state == "ok")


def user_data(inst: Instance) -> str | None:
    """The server's user data as Nova shows it: base64, or None."""
    return base64.b64encode(inst.user_data.encode()).decode() if inst.user_data else None


def _versioned(out: dict[str, Any], inst: Instance, version: Version,
               creds: Credentials) -> None:
    if version >= "2.9":
        out["locked"] = inst.locked
    if version >= "2.16" and creds.is_admin:
        out["host_status"] = ""  # set by detail() from the node, for admins only (Nova)
    if version >= "2.19":
        out["description"] = inst.description
    if version >= "2.26":
        out["tags"] = list(inst.tags or [])
    if version >= "2.63":
        out["trusted_image_certificates"] = None
    if version >= "2.73":
        out["locked_reason"] = inst.locked_reason
    if version >= "2.96":
        out["pinned_availability_zone"] = inst.availability_zone
    if creds.is_admin:
        out.update({"OS-EXT-SRV-ATTR:host": inst.node_name,
                    "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.node_name,
                    "OS-EXT-SRV-ATTR:instance_name": f"instance-{inst.id[:8]}"})
        if version >= "2.3":
            out.update({"OS-EXT-SRV-ATTR:hostname": inst.hostname,
                        "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                        "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                        "OS-EXT-SRV-ATTR:user_data": user_data(inst),
                        "OS-EXT-SRV-ATTR:kernel_id": "",
                        "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda"})
    elif version >= "2.90":
        out["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
