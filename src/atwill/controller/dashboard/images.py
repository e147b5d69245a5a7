"""Images: the list, upload (created here, its data streamed through), delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .web import api, check_header, checked_form, current, redirect, render

router = APIRouter()
IMAGES = "/image/v2/images"
FORMATS = ("qcow2", "raw", "iso", "vmdk", "vdi", "vhd", "vhdx", "ami", "ari", "aki")


@router.get("/images")
async def images_get(request: Request) -> Response:
    sess = current(request)
    images = (await api(request, sess).get(IMAGES))["images"]
    return render(request, "images.html", images=sorted(images, key=lambda i: i["name"] or ""),
                  formats=FORMATS)


@router.post("/images")
async def images_post(request: Request) -> Response:
    """The image record; the page's script then sends its data to …/file."""
    sess = current(request)
    data = await checked_form(request, sess)
    body = {"name": data.get("name"), "disk_format": data.get("disk_format") or "qcow2",
            "container_format": "bare", "visibility": data.get("visibility") or "private"}
    image = await api(request, sess).post(IMAGES, body)
    return JSONResponse({"id": image["id"]}, status_code=201)


@router.put("/images/{image_id}/file")
async def image_file(image_id: str, request: Request) -> Response:
    sess = current(request)
    check_header(request, sess)
    await api(request, sess).upload(f"{IMAGES}/{image_id}/file", request.stream())
    return Response(status_code=204)


@router.post("/images/{image_id}/delete")
async def image_delete(image_id: str, request: Request) -> Response:
    sess = current(request)
    await checked_form(request, sess)
    await api(request, sess).delete(f"{IMAGES}/{image_id}")
    return redirect(request, "/images")
