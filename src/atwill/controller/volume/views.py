"""Cinder's response shapes for volumes, snapshots, types and attachments."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot, VolumeType
from .common import links, stamp

ATTACHED = ("attaching", "attached", "detaching")


def volume_summary(request: Request, vol: Volume) -> dict[str, Any]:
    return {"id": vol.id, "name": vol.name,
            "links": links(request, "volumes", vol.id, vol.project_id)}


def volume_view(request: Request, vol: Volume, vtype: VolumeType,
                attachments: list[VolumeAttachment], version: Version,
                creds: Credentials, extended: bool = True) -> dict[str, Any]:
    """Show and detail carry the extension attributes; create and update do not."""
    body: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description,
        "status": vol.status, "size": vol.size, "availability_zone": vol.availability_zone,
        "created_at": stamp(vol.created_at), "updated_at": stamp(vol.updated_at),
        "volume_type": vtype.name, "snapshot_id": vol.snapshot_id,
        "source_volid": vol.source_volid, "metadata": shown_metadata(vol),
        "links": links(request, "volumes", vol.id, vol.project_id),
        "user_id": vol.user_id, "bootable": "true" if vol.bootable else "false",
        "encrypted": False, "replication_status": None, "consistencygroup_id": None,
        "multiattach": vol.multiattach, "migration_status": None,
        "attachments": [attachment_summary(a) for a in attachments if a.status in ATTACHED],
    }
    if extended:
        body["os-vol-tenant-attr:tenant_id"] = vol.project_id
    if extended and vol.image_meta:
        body["volume_image_metadata"] = dict(vol.image_meta)
    if extended and creds.is_admin:
        body["os-vol-host-attr:host"] = f"{vol.node_name}@atwill#atwill" if vol.node_name \
            else None
        body["os-vol-mig-status-attr:migstat"] = None
        body["os-vol-mig-status-attr:name_id"] = None
    if version >= "3.13":
        body["group_id"] = None
    if version >= "3.21":
        body["provider_id"] = None
    if version >= "3.48":
        body["service_uuid"] = vol.node_id
        body["shared_targets"] = None if version >= "3.69" else False
    if version >= "3.63":
        body["volume_type_id"] = vtype.id
    if version >= "3.65":
        body["consumes_quota"] = True
    return body


def shown_metadata(vol: Volume) -> dict[str, str]:
    """The volume's metadata plus the readonly flag, as Cinder's visible admin metadata."""
    meta = dict(vol.meta)
    if vol.readonly:
        meta["readonly"] = "True"
    return meta


def attachment_summary(att: VolumeAttachment) -> dict[str, Any]:
    """An attachment as a volume lists it."""
    return {"id": att.volume_id, "attachment_id": att.id, "volume_id": att.volume_id,
            "server_id": att.instance_id, "host_name": att.node_name,
            "device": att.device, "attached_at": stamp(att.attached_at)}


def snapshot_view(snap: VolumeSnapshot, version: Version,
                  extended: bool = True) -> dict[str, Any]:
    """Show and detail carry the extended attributes; create, update and list do not."""
    body: dict[str, Any] = {
        "id": snap.id, "name": snap.name, "description": snap.description,
        "status": snap.status, "size": snap.size, "volume_id": snap.volume_id,
        "created_at": stamp(snap.created_at), "updated_at": stamp(snap.updated_at),
        "metadata": dict(snap.meta),
    }
    if extended:
        body["os-extended-snapshot-attributes:project_id"] = snap.project_id
        body["os-extended-snapshot-attributes:progress"] = (
            "100%" if snap.status == "available" else "0%")
    if version >= "3.41":
        body["user_id"] = snap.user_id
    if version >= "3.65":
        body["consumes_quota"] = True
    return body


def type_view(vtype: VolumeType, access_key: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": vtype.id, "name": vtype.name, "description": vtype.description,
        "is_public": vtype.is_public, "extra_specs": dict(vtype.extra_specs),
    }
    if access_key:
        body["os-volume-type-access:is_public"] = vtype.is_public
    return body
