"""/v2/images/{id}/members: share an image with projects, who accept or reject it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict, Forbidden, NotFound
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.image import Image, ImageMember
from ..service import authorize, caller, controller, field, json_body
from . import views
from .common import find_image

router = APIRouter()
STATUSES = ("accepted", "pending", "rejected")


@router.get("/v2/images/{image_id}/members")
def members_get(image_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "image:get_members")
    with controller(request).db.session() as session:
        image = shared_image(session, creds, image_id)
        members = image.members
        if not owns(creds, image):
            # A member sees its own membership, never who else the image is shared with.
            members = [m for m in members if m.member_id == creds.project_id]
        return {"members": [views.member(m) for m in members], "schema": "/v2/schemas/members"}


@router.post("/v2/images/{image_id}/members")
def members_post(image_id: str, request: Request, creds: Credentials = Depends(caller),
                 body: dict = Depends(json_body)) -> dict:
    member_id = field(body, "member", str, required=True)
    if not member_id or len(member_id) > 64:
        raise BadRequest("Invalid input for field 'member': a project id is required.")
    with controller(request).db.session() as session:
        image = shared_image(session, creds, image_id, lock=True)
        authorize(creds, "image:add_member", project_id=image.owner)
        if any(m.member_id == member_id for m in image.members):
            raise Conflict(f"Member {member_id} already associated with image {image_id}.")
        member = ImageMember(image_id=image.id, member_id=member_id, status="pending")
        image.members.append(member)
        session.flush()
        return views.member(member)


@router.get("/v2/images/{image_id}/members/{member_id}")
def member_get(image_id: str, member_id: str, request: Request,
               creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "image:get_members")
    with controller(request).db.session() as session:
        image = shared_image(session, creds, image_id)
        if not owns(creds, image) and member_id != creds.project_id:
            raise NotFound(f"Member {member_id} not found for image {image_id}.")
        return views.member(find_member(image, member_id))


@router.put("/v2/images/{image_id}/members/{member_id}")
def member_put(image_id: str, member_id: str, request: Request,
               creds: Credentials = Depends(caller), body: dict = Depends(json_body)) -> dict:
    status = field(body, "status", str, required=True)
    if status not in STATUSES:
        raise BadRequest(f"Invalid status {status!r}: expected one of {', '.join(STATUSES)}.")
    with controller(request).db.session() as session:
        image = shared_image(session, creds, image_id, lock=True)
        member = find_member(image, member_id)
        authorize(creds, "image:modify_member", project_id=member_id)
        if member_id != creds.project_id and not creds.is_admin:
            raise Forbidden("Only the member itself may accept or reject a shared image.")
        member.status = status
        member.updated_at = utcnow()
        return views.member(member)


@router.delete("/v2/images/{image_id}/members/{member_id}")
def member_delete(image_id: str, member_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    with controller(request).db.session() as session:
        image = shared_image(session, creds, image_id, lock=True)
        authorize(creds, "image:delete_member", project_id=image.owner)
        image.members.remove(find_member(image, member_id))
    return Response(status_code=204)


def owns(creds: Credentials, image: Image) -> bool:
    return creds.is_admin or (creds.project_id is not None and image.owner == creds.project_id)


def shared_image(session: Session, creds: Credentials, image_id: str,
                 lock: bool = False) -> Image:
    image = find_image(session, creds, image_id, lock=lock)
    if image.visibility != "shared":
        raise Forbidden(f"Image {image_id} is not shared: only images with visibility "
                        "'shared' have members.")
    return image


def find_member(image: Image, member_id: str) -> ImageMember:
    for member in image.members:
        if member.member_id == member_id:
            return member
    raise NotFound(f"Member {member_id} not found for image {image.id}.")
