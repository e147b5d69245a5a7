"""The instances a node must run, as its agent needs them (full spec, no lookups)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from ..compute import server_volumes_state
from ..db.models import Image, Instance, Node
from ..db.network import Network, Port, Subnet
from ..db.volume import VolumeAttachment
from ..peers.images import spec_image
from . import ports, snapshots

NO_LISTS = (lazyload(Image.tags), lazyload(Image.members))


def instances_desired(session: Session, node: Node) -> list[dict[str, Any]]:
    found = list(session.scalars(select(Instance).where(
        Instance.node_id == node.id, Instance.deleted.is_(False),
        Instance.vm_state != "error").order_by(Instance.created_at)))
    # The servers' ports, and which have volumes, read for all at once: per server they
    # were ~4 queries each (26 ms a build at 20 servers, benchmarks/network_build.py).
    ids = [inst.id for inst in found]
    nics: dict[str, list[Port]] = {i: [] for i in ids}
    for port in session.scalars(select(Port).where(Port.device_id.in_(ids))
                                .order_by(Port.created_at, Port.id)):
        nics[port.device_id].append(port)  # as ports.of orders them
    volumes = set(session.scalars(select(VolumeAttachment.instance_id).distinct().where(
        VolumeAttachment.instance_id.in_(ids),
        VolumeAttachment.status.in_(server_volumes_state.LISTED))))
    held = _hold(session, found, [p for ps in nics.values() for p in ps])
    # A server booting from a volume starts once the volume is made and exported to it
    # (asked only of those with an attachment listed: its plugged ones are listed too).
    specs = [instance_spec(session, inst, nics[inst.id], inst.id in volumes) for inst in found
             if inst.id not in volumes or not server_volumes_state.boot_pending(session, inst)]
    del held  # held until the specs are made (_hold)
    return specs


def _hold(session: Session, found: list[Instance], its_ports: list[Port]) -> list[Any]:
    """The servers' images and their ports' networks (with their subnets), read at once
    and held for the build. instance_spec and _nic look each up with session.get, which
    finds an object in the session only while something refers to it: each server read
    its image, and each port its network and subnets, again (3 queries a server, 60 % of
    a build's instances on PostgreSQL)."""
    images = {i for inst in found if (i := inst.shelved_image_id or inst.image_id)}
    networks = {p.network_id for p in its_ports}
    held: list[Any] = []
    if images:
        held += session.scalars(select(Image).where(Image.id.in_(images))
                                .options(*NO_LISTS)).all()
    if networks:  # a network loads its subnets with it (selectin), held by it
        held += session.scalars(select(Network).where(Network.id.in_(networks))).all()
    return held


def instance_spec(session: Session, inst: Instance, its_ports: list[Port] | None = None,
                  volumes: bool = True) -> dict[str, Any]:
    """The server's spec for its node; its_ports (as ports.of gives them) and volumes
    (False: it has no attachment listed) when the caller read them for many at once."""
    # An unshelved server boots from its shelve snapshot.
    image_id = inst.shelved_image_id or inst.image_id
    # Its tags and members (two more queries a build) are not part of the spec.
    image = session.get(Image, image_id, options=NO_LISTS) if image_id else None
    nics = [_nic(session, p) for p in (ports.of(session, inst) if its_ports is None
                                       else its_ports)]
    peer_image = spec_image(session, image_id) if image is None else None
    spec = {
        "id": inst.id, "name": inst.name, "hostname": inst.hostname,
        "vcpus": inst.vcpus, "memory_mb": inst.memory_mb, "disk_gb": inst.disk_gb,
        "image": peer_image if image is None else {
            "id": image.id, "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value, "disk_format": image.disk_format,
            "size": image.size, "properties": image.properties or {}},
        # "building" also while rebuilding: the agent creates the new disk and guest even
        # for a stopped server (then stops it, as its power says).
        "power": inst.desired_power,
        "building": inst.vm_state == "building" or inst.task_state in ("rebuilding",
                                                                        "spawning"),
        "reboot_serial": inst.reboot_serial, "reboot_hard": inst.reboot_hard,
        "rebuild_serial": inst.rebuild_serial, "nics": nics,
        "config_drive": inst.config_drive, "pci_devices": inst.pci_devices or [],
        "metadata": meta_data(inst), "network_data": network_data(nics),
        "user_data": inst.user_data,
        # A createImage the node must do: {"image_id": ...} until it uploads or fails.
        "snapshot": snapshots.request(inst),
    }
    attached = server_volumes_state.desired(session, inst) if volumes else None
    if attached is not None:  # an instance that never had a volume: no key, no QMP work
        spec["volumes"] = attached
    return spec


def _nic(session: Session, port: Any) -> dict[str, Any]:
    network = session.get(Network, port.network_id)
    ips = []
    for fixed in port.fixed_ips:
        subnet = session.get(Subnet, fixed.subnet_id)
        ips.append({"ip_address": fixed.ip_address, "cidr": subnet.cidr if subnet else None,
                    "gateway_ip": subnet.gateway_ip if subnet else None,
                    "dns": list(getattr(subnet, "dns_nameservers", None) or [])})
    return {"port_id": port.id, "mac": port.mac_address, "network_id": port.network_id,
            "mtu": network.mtu if network else 1400, "fixed_ips": ips}


def meta_data(inst: Instance) -> dict[str, Any]:
    keys = {}
    if inst.key_name and inst.key_data:
        keys = {inst.key_name: inst.key_data}
    return {
        "uuid": inst.id, "name": inst.name, "hostname": inst.hostname,
        "availability_zone": inst.availability_zone or "nova", "project_id": inst.project_id,
        "launch_index": inst.launch_index, "meta": inst.meta or {},
        "public_keys": keys,
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()],
        "devices": [],
    }


def network_data(nics: list[dict[str, Any]]) -> dict[str, Any]:
    links, networks, dns = [], [], []
    for index, nic in enumerate(nics):
        link = f"tap{index}"
        links.append({"id": link, "type": "phy", "ethernet_mac_address": nic["mac"],
                      "mtu": nic["mtu"], "vif_id": nic["port_id"]})
        for n, ip in enumerate(nic["fixed_ips"]):
            if ip["cidr"] is None:
                continue
            net = ipaddress.ip_network(ip["cidr"])
            kind = "ipv4_dhcp" if net.version == 4 else "ipv6_dhcp"
            networks.append({"id": f"network{index}-{n}", "type": kind, "link": link,
                             "network_id": nic["network_id"]})
            dns += [d for d in ip["dns"] if d not in dns]
    return {"links": links, "networks": networks,
            "services": [{"type": "dns", "address": d} for d in dns]}
