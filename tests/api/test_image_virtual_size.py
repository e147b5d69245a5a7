"""An image whose virtual size is known (a peer's image says it; Glance's field) is
refused where it does not fit, before anything is recorded: a volume smaller than it
(Cinder's ImageUnacceptable, 400), a flavor's root disk smaller than it (Nova's 400).
The nodes check the file's own virtual size again (tests/unit/test_image_virtual_size.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from atwill.controller.db.image import Image
from atwill.controller.db.session import Database
from tests.cloud import Cloud, unique

V = "/compute/v2.1"
TIB10 = 10 * 1024**4
GIB = 1024**3


@dataclass
class Env:
    cloud: Cloud
    image: str
    flavor: str

    def virtual_size(self, size: int) -> None:
        """Set the image's virtual size (read-only in the API) as a peer's metadata would."""
        db = Database(self.cloud.db_url())
        try:
            with db.session() as session:
                session.execute(update(Image).where(Image.id == self.image).values(
                    virtual_size=size))
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("vsize")
    data = tmp / "small.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("vsimg"), "-f", "json")["id"]
    name = unique("vsflv")
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                             name, "-f", "json")["id"]
    try:
        yield Env(cloud, image, flavor)
    finally:
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)


def _volumes(env: Env) -> list[str]:
    return [v["ID"] for v in env.cloud.openstack("volume", "list", "-f", "json")]


def _servers(env: Env) -> list[str]:
    return [s["ID"] for s in env.cloud.openstack("server", "list", "-f", "json")]


def test_a_volume_smaller_than_the_images_virtual_size_is_400(env: Env) -> None:
    env.virtual_size(TIB10)
    before = _volumes(env)
    with env.cloud.http(env.cloud.token()) as client:
        resp = client.post("/volume/v3/volumes", json={"volume": {
            "size": 1, "imageRef": env.image, "name": unique("vsvol")}})
        assert resp.status_code == 400, resp.text
        assert resp.json()["badRequest"]["message"] == (
            f"Image {env.image} is unacceptable: Image virtual size is 10240GB and doesn't "
            "fit in a volume of size 1GB.")
        assert _volumes(env) == before

        env.virtual_size(GIB)  # exactly the volume's size: it fits
        made = client.post("/volume/v3/volumes", json={"volume": {
            "size": 1, "imageRef": env.image, "name": unique("vsvol")}})
        assert made.status_code == 202, made.text
        vid = made.json()["volume"]["id"]
        assert client.delete(f"/volume/v3/volumes/{vid}").status_code == 202


def test_a_flavor_disk_smaller_than_the_images_virtual_size_is_400(env: Env) -> None:
    env.virtual_size(TIB10)
    before = _servers(env)
    body = {"name": unique("vssrv"), "flavorRef": env.flavor, "imageRef": env.image,
            "networks": "none"}
    version = {"OpenStack-API-Version": "compute 2.37"}
    with env.cloud.http(env.cloud.token()) as client:
        resp = client.post(f"{V}/servers", headers=version, json={"server": body})
        if resp.status_code == 202:  # the bug: remove what it made before failing
            env.cloud.openstack("server", "delete", "--wait", resp.json()["server"]["id"])
        assert resp.status_code == 400, resp.text
        assert resp.json()["badRequest"]["message"] == (
            f"Flavor's disk is too small for requested image. Flavor disk is {GIB} bytes, "
            f"image is {TIB10} bytes.")
        # A volume made from the image at boot is checked as any volume.
        bfv = client.post(f"{V}/servers", headers=version, json={"server": {
            **{k: v for k, v in body.items() if k != "imageRef"},
            "block_device_mapping_v2": [{
                "boot_index": 0, "uuid": env.image, "source_type": "image",
                "destination_type": "volume", "volume_size": 1}]}})
        assert bfv.status_code == 400, bfv.text
        assert "Image virtual size is 10240GB and doesn't fit in a volume of size 1GB" \
            in bfv.text
    assert _servers(env) == before
    assert env.cloud.openstack("volume", "list", "-f", "json") == []
