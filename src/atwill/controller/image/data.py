"""/v2/images/{id}/file: streamed upload (queued -> saving -> active) and ranged download.

store_body is also how a node uploads a server snapshot (cluster/snapshots.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import BinaryIO

from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ...core import imageformat, ranges
from ...core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    UnsupportedMediaType,
)
from ...core.policy import Credentials
from ..context import Controller
from ..db.base import utcnow
from ..db.image import Image
from ..service import authorize, caller, controller
from .common import find_image, media_type
from .readahead import read_ahead
from .store import ImageStore, Upload

router = APIRouter()
# Upload chunks are gathered into batches of BATCH bytes, hashed and written by the
# upload's threads while the event loop receives up to DEPTH batches ahead.
BATCH = 1024 * 1024
DEPTH = 4


@router.put("/v2/images/{image_id}/file")
async def image_file_put(image_id: str, request: Request,
                         creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    await store_body(ctl, request, image_id, lambda: begin_upload(ctl, creds, image_id))
    return Response(status_code=204)


async def store_body(ctl: Controller, request: Request, image_id: str,
                     begin: Callable[[], object],
                     also: Callable[[Session], None] | None = None) -> None:
    """Store the request body as the image's data: queued -> saving -> active.

    begin checks who may upload and moves the image to saving (mark_saving); also
    runs in the transaction that makes the image active. On any failure the image
    is queued again and the partial data removed; data that is not its disk_format
    or names files outside itself (core/imageformat.py) is refused with 400 and
    the image ends 'killed', as Glance's status for data that failed: it can only
    be deleted, so the same image cannot be retried into something else.
    """
    limit = ctl.settings.image_size_limit
    if media_type(request) != "application/octet-stream":
        raise UnsupportedMediaType("Image data must be sent as application/octet-stream.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise (BadRequest("Invalid Content-Length.") if not declared.isdigit() else
               PayloadTooLarge(f"Image data exceeds the size limit of {limit} bytes."))
    upload = ImageStore.of(ctl).begin(image_id, limit)  # before 'saving': it may refuse
    try:
        await run_in_threadpool(begin)
    except BaseException:
        upload.abort()
        raise
    try:
        await receive(request, upload)
        await run_in_threadpool(inspect_upload, ctl, image_id, upload)
        await run_in_threadpool(finish_upload, ctl, image_id, upload, also)
    except imageformat.UnsafeImage as err:
        upload.abort()
        kill(ctl, image_id)
        raise BadRequest(str(err)) from None
    except BaseException as err:
        # Synchronous on purpose: after a disconnect or cancellation further awaits
        # may never run, and the image must not stay in 'saving'.
        upload.abort()
        requeue(ctl, image_id)
        if isinstance(err, ClientDisconnect):
            raise BadRequest("The client closed the connection before the upload ended.") \
                from None
        raise


def begin_upload(ctl: Controller, creds: Credentials, image_id: str) -> None:
    """queued -> saving, atomically, so two uploads to one image cannot both proceed."""
    with ctl.db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, "image:upload_image", project_id=image.owner)
        if image.status != "queued":
            raise Conflict(f"Image {image_id} has status '{image.status}': data can only be "
                           "uploaded to a queued image.")
        if image.disk_format is None or image.container_format is None:
            raise BadRequest("Properties disk_format, container_format must be set prior to "
                             "saving data.")
        mark_saving(session, image_id)


def mark_saving(session: Session, image_id: str) -> None:
    """queued -> saving in one statement: of two concurrent uploads only one moves it."""
    moved = session.execute(update(Image).where(
        Image.id == image_id, Image.status == "queued").values(status="saving"))
    if moved.rowcount != 1:
        raise Conflict(f"Image {image_id} is already receiving data.")


async def receive(request: Request, upload: Upload) -> None:
    """Stream the body to the upload's file, holding at most DEPTH + 1 batches.

    The event loop gathers the next batch while the upload's threads hash and write
    the ones before it.
    """
    batch: list[bytes] = []
    held = 0
    async for chunk in request.stream():
        batch.append(chunk)
        held += len(chunk)
        if held >= BATCH:
            upload.feed(b"".join(batch))
            batch, held = [], 0
            await caught_up(upload, DEPTH)
    if batch:
        upload.feed(b"".join(batch))
    await caught_up(upload, 0)
    await to_thread.run_sync(upload.complete)


async def caught_up(upload: Upload, depth: int) -> None:
    """At most depth batches are still queued (an error of one before is raised here)."""
    while len(upload.pending) > 2 * depth:
        await asyncio.wrap_future(upload.pending[0])
        upload.pending.popleft().result()


def finish_upload(ctl: Controller, image_id: str, upload: Upload,
                  also: Callable[[Session], None] | None = None) -> None:
    """saving -> active with the data's size and hashes; the file appears in the same step."""
    with ctl.db.session() as session:
        done = session.execute(update(Image).where(
            Image.id == image_id, Image.status == "saving").values(
            status="active", size=upload.size, checksum=upload.md5.hexdigest(),
            os_hash_algo="sha512", os_hash_value=upload.sha512.hexdigest(),
            updated_at=utcnow()))
        if done.rowcount != 1:
            raise Conflict(f"Image {image_id} was deleted or changed during the upload.")
        if also is not None:
            also(session)
        # Renamed inside the transaction: if the commit then fails the image stays
        # unpublished and start-up housekeeping removes the stray file.
        upload.publish(ImageStore.of(ctl).path(image_id))


def inspect_upload(ctl: Controller, image_id: str, upload: Upload) -> None:
    """UnsafeImage unless the received data is what the image's disk_format says."""
    with ctl.db.session() as session:
        image = session.get(Image, image_id)
        declared = image.disk_format if image is not None else None
    if declared is None:
        raise Conflict(f"Image {image_id} was deleted or changed during the upload.")
    with open(upload.temp, "rb") as data:
        imageformat.check(data, declared)


def kill(ctl: Controller, image_id: str) -> None:
    """saving -> killed: the data was refused and is gone."""
    with ctl.db.session() as session:
        session.execute(update(Image).where(
            Image.id == image_id, Image.status == "saving").values(
            status="killed", updated_at=utcnow()))


def requeue(ctl: Controller, image_id: str) -> None:
    with ctl.db.session() as session:
        session.execute(update(Image).where(
            Image.id == image_id, Image.status == "saving").values(status="queued"))


@router.get("/v2/images/{image_id}/file")
def image_file_get(image_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    with ctl.db.session() as session:
        image = find_image(session, creds, image_id)
        authorize(creds, "image:download_image")
        if image.status == "deactivated" and not creds.is_admin:
            raise Forbidden("The requested image has been deactivated. Image data download "
                            "is forbidden.")
        if image.status not in ("active", "deactivated"):
            return Response(status_code=204)
        size, checksum = image.size or 0, image.checksum
    try:
        handle = open(ImageStore.of(ctl).path(image_id), "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise NotFound(f"The data of image {image_id} could not be found.") from None
    try:
        span = ranges.parse_range(request.headers.get("range"), size)
    except ranges.Unsatisfiable as err:
        handle.close()
        raise RangeNotSatisfiable(str(err), headers={"Content-Range": f"bytes */{size}"}) \
            from None
    return file_response(handle, size, checksum, span)


def file_response(handle: BinaryIO, size: int, checksum: str | None,
                  span: tuple[int, int] | None) -> StreamingResponse:
    first, last = span or (0, size - 1)
    headers = {"Content-Length": str(last - first + 1), "Accept-Ranges": "bytes"}
    if span is None:
        if checksum:
            headers["Content-MD5"] = checksum
    else:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(read_ahead(handle, first, last - first + 1),
                             status_code=206 if span else 200, headers=headers,
                             media_type="application/octet-stream")
