"""Booting here from a peer's image: its metadata is fetched from the peer at create, and
a node's image download streams from the peer through this controller, checksum checked."""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict
from ...core.text import shown
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Image
from ..db.peers import Peer, PeerImage
from . import client, seal

log = logging.getLogger("atwill.peers")

# (peer, caller's token, timeout, sealer) while a compute request is scoped {"image": peer}.
PEER_IMAGE: contextvars.ContextVar[tuple[Any, str, float, Any] | None] = contextvars.ContextVar(
    "atwill_peer_image", default=None)
KEPT = ("hw_", "os_type", "os_distro", "os_version")


def scoped_image(session: Session, ref: str) -> Image | None:
    """The peer's image to boot (unsaved, for checks), when the image service is scoped
    to a peer; None otherwise. Its metadata is kept for the node's spec and download."""
    scoped = PEER_IMAGE.get()
    if scoped is None:
        return None
    peer, token, timeout, sealer = scoped
    try:
        with client.sync_client(peer, timeout) as http:
            resp = http.get(f"/image/v2/images/{ref}", headers={"X-Auth-Token": token})
    except httpx.HTTPError as err:
        raise client.unreachable(peer.name, timeout, err) from None
    if resp.status_code != 200:
        raise BadRequest(f"Image {ref} could not be found in the peer cloud {peer.name} "
                         f"(HTTP {resp.status_code}).")
    data = resp.json()
    _check_identity(session, peer, ref, data)
    if data.get("status") != "active":
        raise BadRequest(f"Image {ref} of the peer cloud {peer.name} is not active.")
    props = {k: v for k, v in data.items() if k.startswith(KEPT) and isinstance(v, str)}
    fields = {"name": data.get("name"), "checksum": data.get("checksum"),
              "os_hash_algo": data.get("os_hash_algo"),
              "os_hash_value": data.get("os_hash_value"),
              "disk_format": data.get("disk_format"), "size": data.get("size"),
              "min_ram": data.get("min_ram") or 0, "min_disk": data.get("min_disk") or 0,
              "properties": props}
    row = session.get(PeerImage, data["id"]) or PeerImage(id=data["id"])
    for key, value in {**fields, "peer_id": peer.id, "fetch_token_sealed": sealer.seal(token),
                       "updated_at": utcnow()}.items():
        setattr(row, key, value)
    session.add(row)
    # The peer's virtual size is checked against the flavor or volume here (a 400 as in
    # Nova and Cinder); the peer may lie, so the node checks the file itself too.
    virtual = data.get("virtual_size")
    return Image(id=data["id"], status="active", **fields,
                 virtual_size=virtual if isinstance(virtual, int) and virtual > 0 else None)


def _check_identity(session: Session, peer: Any, ref: str, data: dict[str, Any]) -> None:
    """One id, one image: a peer answering for another id, an id this cloud's own images
    use, or one another peer's image holds, is refused (each would let a server boot
    bytes other than the image its user named)."""
    if data.get("id") != ref:
        raise BadRequest(f"The peer cloud {peer.name} answered for image "
                         f"{shown(data.get('id'))} when asked for {ref}: refused.")
    if session.get(Image, ref) is not None:
        raise Conflict(f"Image {ref} of the peer cloud {peer.name} has the id of an image "
                       "of this cloud: refused.")
    held = session.get(PeerImage, ref)
    if held is not None and held.peer_id != peer.id:
        raise Conflict(f"Image {ref} of the peer cloud {peer.name} has the id of another "
                       "peer cloud's image: refused.")


def spec_image(session: Session, image_id: str | None) -> dict[str, Any] | None:
    """A peer image as a node's instance spec names it (None: not a peer image)."""
    row = session.get(PeerImage, image_id) if image_id else None
    if row is None:
        return None
    return {"id": row.id, "checksum": row.checksum, "os_hash_algo": row.os_hash_algo,
            "os_hash_value": row.os_hash_value, "disk_format": row.disk_format,
            "size": row.size, "properties": row.properties or {}}


def node_download(ctl: Controller, session: Session, image_id: str) -> StreamingResponse | None:
    """Stream a peer image to a node (None: not a peer image); a wrong checksum cuts it."""
    row = session.get(PeerImage, image_id)
    peer = session.get(Peer, row.peer_id) if row else None
    if row is None or peer is None:
        return None
    sealer = seal.of(ctl.settings)
    if not row.fetch_token_sealed:
        raise Conflict(f"Image {image_id} of the peer cloud {peer.name} has no token to fetch "
                       "it with (dropped by migration 0023): boot a server from it again.")
    ref = (peer.url, peer.ca_pem, sealer.unseal(peer.credential_sealed, peer.name), peer.name,
           sealer.unseal(row.fetch_token_sealed, peer.name), row.checksum)
    return StreamingResponse(_relay(ctl.settings.peer_timeout, image_id, *ref),
                             media_type="application/octet-stream",
                             headers={"Content-MD5": row.checksum or ""})


async def _relay(timeout: float, image_id: str, url: str, ca_pem: str, credential: str,
                 name: str, token: str, checksum: str | None) -> AsyncIterator[bytes]:
    md5 = hashlib.md5(usedforsecurity=False)
    headers = {client.CREDENTIAL_HEADER: credential, "X-Auth-Token": token}
    async with httpx.AsyncClient(base_url=url, verify=client.tls(ca_pem),
                                 timeout=timeout) as http, \
            http.stream("GET", f"/image/v2/images/{image_id}/file", headers=headers) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"peer {name} refused image {image_id}: {resp.status_code}")
        async for chunk in resp.aiter_bytes(1 << 20):
            md5.update(chunk)
            yield chunk
    if checksum and md5.hexdigest() != checksum:
        # The node checks too; cutting the stream makes sure it never caches bad bytes.
        raise RuntimeError(f"image {image_id} from peer {name}: checksum mismatch")
    log.info("image %s relayed from peer %s", image_id, name)
