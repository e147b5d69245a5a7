"""/v2/images/{id}/tags/{tag}: add and remove one tag."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ...core import imageattrs
from ...core.errors import NotFound, PayloadTooLarge
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.image import ImageTag
from ..service import authorize, caller, controller
from .common import find_image

router = APIRouter()


@router.put("/v2/images/{image_id}/tags/{tag}")
def tag_put(image_id: str, tag: str, request: Request,
            creds: Credentials = Depends(caller)) -> Response:
    value = imageattrs.tag(tag)
    with controller(request).db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, "image:modify_image", project_id=image.owner)
        if value not in {t.value for t in image.tags}:
            if len(image.tags) >= imageattrs.MAX_TAGS:
                raise PayloadTooLarge(f"An image may have at most {imageattrs.MAX_TAGS} tags.")
            image.tags.append(ImageTag(value=value))
            image.updated_at = utcnow()
    return Response(status_code=204)


@router.delete("/v2/images/{image_id}/tags/{tag}")
def tag_delete(image_id: str, tag: str, request: Request,
               creds: Credentials = Depends(caller)) -> Response:
    with controller(request).db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, "image:modify_image", project_id=image.owner)
        kept = [t for t in image.tags if t.value != tag]
        if len(kept) == len(image.tags):
            raise NotFound(f"Tag {tag} not found on image {image_id}.")
        image.tags = kept
        image.updated_at = utcnow()
    return Response(status_code=204)
