"""Nova's volume attachment views by microversion, device names and the create request's
block_device_mapping_v2 (boot from volume)."""

from __future__ import annotations

import pytest

from atwill.controller.compute import server_volumes_boot as boot
from atwill.controller.compute.server_volumes import view
from atwill.controller.compute.server_volumes_state import bdm_uuid, next_device
from atwill.controller.db.volume import VolumeAttachment
from atwill.core.errors import BadRequest
from atwill.core.microversion import Version

IMAGE, VOL = "7c4bd0d5-2a35-4a55-8a9c-4d3e2b8f0a11", "0b6e1a55-8d2f-4f0e-9d6e-3f2a1c9e7b22"


def _att() -> VolumeAttachment:
    return VolumeAttachment(id="5f0c2b7e-1111-4c0e-9a55-0c1c4ad0b7a1", volume_id=VOL,
                            instance_id="srv", device="/dev/vdb", tag="t",
                            delete_on_termination=True)


@pytest.mark.parametrize(("version", "keys"), [
    ("2.1", {"id", "device", "serverId", "volumeId"}),
    ("2.70", {"id", "device", "serverId", "volumeId", "tag"}),
    ("2.79", {"id", "device", "serverId", "volumeId", "tag", "delete_on_termination"}),
    ("2.89", {"device", "serverId", "volumeId", "tag", "delete_on_termination",
              "attachment_id", "bdm_uuid"}),
])
def test_view_keys_follow_the_microversion(version: str, keys: set[str]) -> None:
    assert set(view(_att(), Version.parse(version))) == keys


def test_created_view_keeps_id_at_2_89_and_bdm_uuid_is_stable() -> None:
    att = _att()
    made = view(att, Version.parse("2.89"), created=True)
    assert made["id"] == VOL and "attachment_id" not in made
    assert bdm_uuid(att) == bdm_uuid(_att()) != att.id


def test_next_device_skips_used_names() -> None:
    assert next_device(["/dev/vda"]) == "/dev/vdb"
    assert next_device(["/dev/vda", "/dev/vdb", None, "/dev/vdd"]) == "/dev/vdc"
    with pytest.raises(BadRequest):
        next_device([f"/dev/vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"])


def test_openstackclient_boot_from_volume_shapes() -> None:
    # server create --image X --boot-from-volume 10
    image, maps = boot.parse({"imageRef": "", "block_device_mapping_v2": [{
        "uuid": IMAGE, "boot_index": 0, "source_type": "image",
        "destination_type": "volume", "volume_size": 10, "delete_on_termination": None}]})
    assert image is None
    assert maps == [{"source": "image", "uuid": IMAGE, "size": 10, "tag": None,
                     "boot_index": 0, "delete_on_termination": False}]
    # server create --volume V
    image, maps = boot.parse({"block_device_mapping_v2": [{
        "uuid": VOL, "boot_index": 0, "source_type": "volume",
        "destination_type": "volume", "delete_on_termination": False}]})
    assert image is None and maps[0]["source"] == "volume" and \
        maps[0]["delete_on_termination"] is False


def test_the_local_image_disk_beside_imageref_is_no_volume() -> None:
    image, maps = boot.parse({"imageRef": IMAGE, "block_device_mapping_v2": [{
        "uuid": IMAGE, "boot_index": 0, "source_type": "image",
        "destination_type": "local"}]})
    assert (image, maps) == (IMAGE, [])
    image, maps = boot.parse({"imageRef": IMAGE, "block_device_mapping_v2": [{
        "source_type": "blank", "destination_type": "volume", "volume_size": 1,
        "boot_index": -1}]})
    assert image == IMAGE and maps[0]["boot_index"] is None


@pytest.mark.parametrize("bdm", [
    "x", {"source_type": "volume", "destination_type": "volume"},
    {"source_type": "image", "destination_type": "volume", "uuid": IMAGE},
    {"source_type": "blank", "destination_type": "local"},
    {"source_type": "volume", "destination_type": "volume", "uuid": VOL, "boot_index": "a"},
    {"source_type": "volume", "destination_type": "volume", "uuid": VOL,
     "delete_on_termination": "yes"},
    {"source_type": "nfs", "destination_type": "volume", "uuid": VOL},
])
def test_bad_mappings_are_400(bdm: object) -> None:
    with pytest.raises(BadRequest):
        boot.parse({"block_device_mapping_v2": [bdm]})


def test_two_boot_volumes_and_many_servers_on_one_volume_are_refused() -> None:
    two = {"source_type": "volume", "destination_type": "volume", "boot_index": 0}
    with pytest.raises(BadRequest, match="Boot sequence"):
        boot.parse({"block_device_mapping_v2": [{**two, "uuid": VOL}, {**two, "uuid": IMAGE}]})
    _, maps = boot.parse({"block_device_mapping_v2": [{**two, "uuid": VOL}]})
    boot.check_count(maps, 1)
    assert boot.local_disk(20, {"block_devices": maps}) == 0
    assert boot.local_disk(20, {"block_devices": []}) == 20
    with pytest.raises(BadRequest):
        boot.check_count(maps, 2)
