"""A peer's image keeps the virtual size its peer gives: a volume or a flavor too small
for it is a 400 here (Cinder's and Nova's messages), not a 10 TiB disk made from a
small file billed as what was asked. The peer may lie: the nodes check the file too
(test_image_virtual_size.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from atwill.controller.db.peers import Peer, PeerImage
from atwill.controller.db.volume import Volume
from atwill.controller.peers import client, images
from atwill.controller.volume import sources
from atwill.core import imagefit
from atwill.core.errors import BadRequest
from atwill.core.policy import Credentials

IMAGE = "0b7c1b2e-36a4-4a9b-9d43-3c1e6f1c2d10"
TIB10 = 10 * 1024**4



class Sealer:
    def seal(self, text: str) -> str:
        return f"sealed:{text}"


@pytest.fixture
def peer(session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[Peer]:
    row = Peer(name="CloudTwo", url="https://two.example", ca_pem="-", ca_hash="sha256:x",
               inbound_hash="0" * 64, services=["image"])
    session.add(row)
    session.flush()

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/image/v2/images/{IMAGE}"
        return httpx.Response(200, json={
            "id": IMAGE, "name": "small-file", "status": "active", "disk_format": "qcow2",
            "size": 1 << 20, "virtual_size": TIB10, "min_disk": 0, "min_ram": 0,
            "checksum": "0" * 32})

    def sync_client(peer: Any, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=peer.url, transport=httpx.MockTransport(answer))

    monkeypatch.setattr(client, "sync_client", sync_client)
    token = images.PEER_IMAGE.set((row, "caller-token", 1.0, Sealer()))
    try:
        yield row
    finally:
        images.PEER_IMAGE.reset(token)


def test_the_peers_virtual_size_is_kept(session: Session, peer: Peer) -> None:
    image = images.scoped_image(session, IMAGE)
    assert image is not None and (image.size, image.virtual_size) == (1 << 20, TIB10)
    assert session.get(PeerImage, IMAGE) is not None  # the node's spec row, as before
    with pytest.raises(BadRequest, match="Flavor's disk is too small for requested image. "
                       f"Flavor disk is 1073741824 bytes, image is {TIB10} bytes."):
        imagefit.check_fits(64, 1, image.size, image.min_ram, image.min_disk,
                            image.virtual_size)
    imagefit.check_fits(64, 10240, image.size, image.min_ram, image.min_disk,
                        image.virtual_size)


def test_a_volume_from_the_peers_image_must_hold_its_virtual_size(
        session: Session, peer: Peer) -> None:
    creds = Credentials(user_id="u", project_id="p")
    small = Volume(size=1)
    with pytest.raises(BadRequest, match=f"Image {IMAGE} is unacceptable: Image virtual size "
                       "is 10240GB and doesn't fit in a volume of size 1GB."):
        sources.from_image(session, creds, IMAGE, small)
    large = Volume(size=10240)
    sources.from_image(session, creds, IMAGE, large)
    assert (large.image_id, large.bootable) == (IMAGE, True)
