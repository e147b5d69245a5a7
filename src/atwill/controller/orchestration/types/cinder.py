"""OS::Cinder::Volume and OS::Cinder::VolumeAttachment, through atwill's block storage API
and Nova's os-volume_attachments, as the stack's owner."""

from __future__ import annotations

from typing import Any

from ..services import Api, ResourceFailure
from .base import Made, Prop, ResourceType, Scope

V = "/volume/v3/volumes"
C = "/compute/v2.1"


class Volume(ResourceType):
    name = "OS::Cinder::Volume"
    properties = {"size": Prop("integer", low=1), "name": Prop("string", update_allowed=True),
                  "description": Prop("string", update_allowed=True),
                  "availability_zone": Prop("string"), "volume_type": Prop("string"),
                  "image": Prop("string"), "snapshot_id": Prop("string"),
                  "source_volid": Prop("string"), "metadata": Prop("map", update_allowed=True),
                  "multiattach": Prop("boolean")}
    attributes = {"size": "The size of the volume in GB.", "status": "The volume's status.",
                  "availability_zone": "The volume's availability zone.",
                  "bootable": "Whether the volume can be booted from.",
                  "display_name": "The name of the volume."}
    SOURCES = {"image": "imageRef", "snapshot_id": "snapshot_id",
               "source_volid": "source_volid"}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body: dict[str, Any] = {"name": props.get("name") or
                                f"{scope.stack_name}-{scope.resource_name}"}
        for key in ("size", "description", "availability_zone", "volume_type", "metadata",
                    "multiattach"):
            if props.get(key) is not None:
                body[key] = props[key]
        for key, field in self.SOURCES.items():
            if props.get(key):
                body[field] = props[key]
        made = (await api.post(V, {"volume": body}))["volume"]
        return Made(made["id"], _shown(made))

    async def ready(self, api: Api, made: Made) -> bool:
        volume = (await api.get(f"{V}/{made.physical_id}"))["volume"]
        made.data.update(_shown(volume))
        if volume["status"] == "error":
            raise ResourceFailure("ResourceInError", "Went to status error due to "
                                  '"Unknown"')
        return volume["status"] == "available"

    async def update(self, api: Api, made: Made, props: dict[str, Any],
                     changed: set[str], scope: Scope) -> Made:
        body = {k: props.get(k) for k in changed & {"name", "description", "metadata"}}
        shown = (await api.put(f"{V}/{made.physical_id}", {"volume": body}))["volume"]
        return Made(made.physical_id, _shown(shown))

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{V}/{made.physical_id}")

    async def deleted(self, api: Api, made: Made) -> bool:
        return await api.get(f"{V}/{made.physical_id}", ok_missing=True) is None


def _shown(volume: dict[str, Any]) -> dict[str, Any]:
    return {"size": volume.get("size"), "status": volume.get("status"),
            "availability_zone": volume.get("availability_zone"),
            "bootable": volume.get("bootable"), "display_name": volume.get("name")}


class VolumeAttachment(ResourceType):
    name = "OS::Cinder::VolumeAttachment"
    properties = {"instance_uuid": Prop("string", required=True),
                  "volume_id": Prop("string", required=True),
                  "mountpoint": Prop("string")}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        body: dict[str, Any] = {"volumeId": props["volume_id"]}
        if props.get("mountpoint"):
            body["device"] = props["mountpoint"]
        server, volume = props["instance_uuid"], props["volume_id"]
        await api.post(f"{C}/servers/{server}/os-volume_attachments",
                       {"volumeAttachment": body})
        return Made(f"{server}/{volume}", {"server": server, "volume": volume})

    async def ready(self, api: Api, made: Made) -> bool:
        volume = (await api.get(f"{V}/{made.data['volume']}"))["volume"]
        if volume["status"] == "error_attaching":
            raise ResourceFailure("ResourceInError", "The volume could not be attached.")
        return volume["status"] == "in-use"

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(f"{C}/servers/{made.data['server']}/os-volume_attachments/"
                         f"{made.data['volume']}")

    async def deleted(self, api: Api, made: Made) -> bool:
        volume = await api.get(f"{V}/{made.data['volume']}", ok_missing=True)
        return volume is None or volume["volume"]["status"] in ("available", "error")


CINDER_TYPES = (Volume(), VolumeAttachment())
