"""Boot from volume: a create request's block_device_mapping_v2 read as Nova does, and the
volumes it names (or makes) attached to the new server before its node starts it.

Supported mappings: destination_type "volume" with source_type "volume" (an existing
volume), "image" (a new volume made from the image, volume_size GiB), "snapshot" (a new
volume from a volume snapshot) or "blank" (a new empty volume); and the local image disk
(source_type "image", destination_type "local") that clients send beside imageRef.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.policy import Credentials
from ..db.models import Instance
from ..servers import locks
from ..volume import lock_order, placement
from ..volume.access import find_volume
from ..volume.volumes import new_volume
from . import server_volumes_state as state

SOURCES = ("volume", "image", "snapshot", "blank")
MAX_MAPPINGS = 26  # one per /dev/vdX


def _int(bdm: dict[str, Any], key: str, minimum: int) -> int | None:
    value = bdm.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                         f"It must be an integer >= {minimum}.")
    return value


def _mapping(bdm: Any) -> dict[str, Any] | None:
    """One volume mapping, checked; None for the local image disk."""
    if not isinstance(bdm, dict):
        raise BadRequest("Invalid input for field/attribute block_device_mapping_v2.")
    source = bdm.get("source_type")
    dest = bdm.get("destination_type") or ("local" if source in ("image", "blank") else "volume")
    if dest == "local":
        if source != "image":
            raise BadRequest("Block Device Mapping is Invalid: only an image may be a local "
                             "disk; ephemeral and swap disks come from the flavor.")
        return None
    if dest != "volume" or source not in SOURCES:
        raise BadRequest(f"Block Device Mapping is Invalid: source_type {source!r} with "
                         f"destination_type {dest!r} is not supported.")
    ident = bdm.get("uuid")
    if source != "blank" and (not isinstance(ident, str) or not ident):
        raise BadRequest(f"Block Device Mapping is Invalid: a {source} mapping needs its "
                         "uuid.")
    size = _int(bdm, "volume_size", 1)
    if source in ("image", "blank") and size is None:
        raise BadRequest(f"Block Device Mapping is Invalid: a volume made from a {source} "
                         "needs volume_size.")
    flag = bdm.get("delete_on_termination")
    flag = False if flag is None else flag  # Nova's default (OSC sends null)
    if not isinstance(flag, bool):
        raise BadRequest("Invalid input for field/attribute delete_on_termination.")
    tag = bdm.get("tag")
    if tag is not None and (not isinstance(tag, str) or not 0 < len(tag) <= 60):
        raise BadRequest("Invalid input for field/attribute tag.")
    return {"source": source, "uuid": ident, "size": size, "tag": tag,
            "boot_index": _int(bdm, "boot_index", -1), "delete_on_termination": flag}


def parse(data: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """(the image of the local disk, the volume mappings) of a create request."""
    image = data.get("imageRef") or None
    mappings: list[dict[str, Any]] = []
    for bdm in data.get("block_device_mapping_v2") or []:
        mapping = _mapping(bdm)
        if mapping is None:
            image = image or bdm.get("uuid")
        else:
            mappings.append(mapping)
    if len(mappings) > MAX_MAPPINGS:
        raise BadRequest(f"Block Device Mapping is Invalid: at most {MAX_MAPPINGS} volumes.")
    boots = [m for m in mappings if m["boot_index"] == 0]
    if len(boots) > 1:
        raise BadRequest("Block Device Mapping is Invalid: Boot sequence for the instance "
                         "and image/block device mapping combination is not valid.")
    for mapping in mappings:
        if mapping["boot_index"] is not None and mapping["boot_index"] < 0:
            mapping["boot_index"] = None  # Nova: a negative index is "not bootable"
    if boots:
        image = None  # the volume is the disk; an imageRef beside it only named its source
    if image is not None and not isinstance(image, str):
        raise BadRequest("Invalid input for field 'imageRef'.")
    return image, mappings


def local_disk(flavor_disk: int, spec: dict[str, Any]) -> int:
    """The node's disk a server takes: none when a volume is its root disk (the volume
    counts against the volume quotas, on the storage node)."""
    if any(m["boot_index"] == 0 for m in spec.get("block_devices") or []):
        return 0
    return flavor_disk


def check_count(mappings: list[dict[str, Any]], count: int) -> None:
    if count > 1 and any(m["source"] == "volume" for m in mappings):
        raise BadRequest("Block Device Mapping is Invalid: one volume cannot be the disk of "
                         f"{count} servers (a volume is attached to one server at a time).")


def attach_all(session: Session, creds: Credentials, inst: Instance,
               mappings: list[dict[str, Any]]) -> None:
    """Attach (making first when asked) the mapped volumes; the boot one is /dev/vda.

    Every lock this needs was taken by lock_ahead before the request's servers were
    placed on compute nodes (servers/builds.py), in volume/lock_order.py's order (the
    project's quota lock, the storage nodes' capacity locks, the named volumes' rows by
    id), then the compute node rows: an extend or a snapshot of one of the volumes at the
    same time waits, never deadlocks, and a boot never waits for a storage node while it
    holds a compute node's row. The nodes locked are those the new volumes will go to
    (picked first, from what is committed) and those of the snapshots and volumes named,
    never every storage node; a node that filled meanwhile is replaced by trying others."""
    for mapping in _in_order(mappings):
        if mapping["source"] == "volume":
            vol = find_volume(session, creds, mapping["uuid"], lock=True)
            if vol.status != "available":
                raise BadRequest(f"Invalid volume: volume '{vol.id}' status must be "
                                 f"'available'. Currently in '{vol.status}'")
            if mapping["boot_index"] == 0 and not vol.bootable:
                raise BadRequest(f"Block Device {vol.id} is not bootable.")
        else:
            data: dict[str, Any] = {"size": mapping["size"], "name": ""}
            key = {"image": "imageRef", "snapshot": "snapshot_id"}.get(mapping["source"])
            if key is not None:
                data[key] = mapping["uuid"]
            vol = new_volume(session, creds, data)
        state.add(session, inst, vol, mapping["tag"], mapping["delete_on_termination"],
                  mapping["boot_index"])
        if vol.status == "error":  # no storage node could take it
            state.fail_boots_on(session, vol)


def _in_order(mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The boot volume first (it becomes /dev/vda), then by boot_index."""
    return sorted(mappings, key=lambda m: (m["boot_index"] != 0, m["boot_index"] or 0))


def lock_ahead(session: Session, creds: Credentials, mappings: list[dict[str, Any]],
               count: int = 1) -> None:
    """The locks attach_all needs for count servers with these mappings, in
    lock_order.py's order: taken once, before any of them is placed on a compute node.

    Should this transaction hold node locks already (lock_ahead called again), waiting for
    a node it picks now could close a cycle with another such transaction (each holding
    the node the other picked next: a deadlock): those nodes are only tried then (what
    cannot be had is left to placement.place, which tries the others). A server that names
    existing volumes is refused with count > 1 (check_count), so no row is locked late."""
    made = [m for m in mappings if m["source"] != "volume"]
    if made:
        locks.lock_project(session, creds.project_id or "")  # new volumes are charged
    # The order attach_all makes them in, server after server: each pick counts the ones
    # before it.
    placed = [m["size"] for m in _in_order(made) if m["source"] in ("image", "blank")]
    placed *= max(count, 1)
    nodes = lock_order.new_volume_nodes(session, placed) if placed else set()
    nodes |= lock_order.snapshot_nodes(session, [m["uuid"] for m in made
                                                 if m["source"] == "snapshot"])
    named = [m["uuid"] for m in mappings if m["source"] == "volume"
             and isinstance(m["uuid"], str)]
    if placement.may_wait(session):
        lock_order.lock_volumes(session, named, nodes)
        return
    placement.try_lock_nodes(session, nodes)
    if named:  # never with count > 1 (check_count): a later server names no volume
        lock_order.lock_volumes(session, named)
