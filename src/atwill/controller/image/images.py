"""/v2/images/{id}: create, show, update (JSON patch), delete; deactivate and reactivate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ...core import imageattrs, jsonpatch
from ...core.errors import BadRequest, Conflict, Forbidden, NotFound
from ...core.policy import Credentials
from ..db.base import utcnow
from ..db.image import Image, ImageTag
from ..db.peers import PeerImage
from ..service import authorize, caller, controller, json_body
from . import views
from .common import find_image, patch_body
from .store import ImageStore

router = APIRouter()
# Who may make an image visible beyond its project, by the visibility asked for.
VISIBILITY_RULES = {"public": "image:publicize_image", "community": "image:communitize_image"}
# Which statuses each action moves from, and where to.
ACTIONS = {"deactivate": ("active", "deactivated"), "reactivate": ("deactivated", "active")}


@router.post("/v2/images")
def images_post(request: Request, creds: Credentials = Depends(caller),
                body: dict = Depends(json_body)) -> JSONResponse:
    authorize(creds, "image:add_image")
    core, props = imageattrs.create_fields(body)
    owner = core.pop("owner", None) or creds.project_id
    if owner != creds.project_id and not creds.is_admin:
        raise Forbidden(f"You are not permitted to create images owned by '{owner}'.")
    check_visibility(creds, core.get("visibility", "shared"), owner)
    tags = core.pop("tags", [])
    with controller(request).db.session() as session:
        if "id" in core and (session.get(Image, core["id"]) is not None
                             or session.get(PeerImage, core["id"]) is not None):
            # A peer image's id too: servers booted from it must never find a local
            # image of someone else's making under the same id.
            raise Conflict(f"Image with identifier {core['id']} already exists!")
        image = Image(**core, owner=owner, properties=props,
                      tags=[ImageTag(value=t) for t in tags])
        session.add(image)
        session.flush()
        out = views.image(image)
    return JSONResponse(out, status_code=201, headers={"Location": _location(request, out)})


@router.get("/v2/images/{image_id}")
def image_get(image_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "image:get_image")
    with controller(request).db.session() as session:
        return views.image(find_image(session, creds, image_id))


@router.api_route("/v2/images/", methods=["GET", "DELETE"], include_in_schema=False)
def image_without_id(creds: Credentials = Depends(caller)) -> None:
    # Glance has no route for an empty id: 404, not the list (a trailing-slash redirect).
    raise NotFound("The resource could not be found.")


@router.patch("/v2/images/{image_id}")
def image_patch(image_id: str, request: Request, creds: Credentials = Depends(caller),
                ops: list = Depends(patch_body)) -> dict:
    for op in ops:
        imageattrs.check_patchable(op["op"], jsonpatch.root(op))
    with controller(request).db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, "image:modify_image", project_id=image.owner)
        old = views.image(image)
        new = patched(old, ops, request.state.patch_dialect)
        core, props = imageattrs.changes(old, new, image.status)
        if "visibility" in core:
            check_visibility(creds, core["visibility"], image.owner)
        if "owner" in core and not creds.is_admin:
            raise Forbidden("Owner can't be updated by non admin.")
        update(image, core, props)
        session.flush()
        return views.image(image)


@router.delete("/v2/images/{image_id}")
def image_delete(image_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    ctl = controller(request)
    with ctl.db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, "image:delete_image", project_id=image.owner)
        if image.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        session.delete(image)
    # After the commit: a crash in between leaves an orphan file for housekeeping,
    # never an image without its data.
    ImageStore.of(ctl).remove(image_id)
    return Response(status_code=204)


@router.post("/v2/images/{image_id}/actions/{action}")
def image_action(image_id: str, action: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    if action not in ACTIONS:
        raise BadRequest(f"Unknown image action {action!r}: expected deactivate or reactivate.")
    source, target = ACTIONS[action]
    with controller(request).db.session() as session:
        image = find_image(session, creds, image_id, lock=True)
        authorize(creds, f"image:{action}", project_id=image.owner)
        if image.status not in (source, target):
            # Glance answers 403 here (its domain raises Forbidden), not 400 or 409.
            raise Forbidden(f"Not allowed to {action} image in status '{image.status}'")
        if image.status != target:
            image.status = target
            image.updated_at = utcnow()
    return Response(status_code=204)


def check_visibility(creds: Credentials, visibility: str, owner: str | None) -> None:
    if visibility in VISIBILITY_RULES:
        authorize(creds, VISIBILITY_RULES[visibility], project_id=owner)


def patched(doc: dict[str, Any], ops: list[dict[str, Any]], dialect: str) -> dict[str, Any]:
    try:
        return jsonpatch.apply(doc, ops, dialect)
    except jsonpatch.PatchConflict as err:
        raise Conflict(str(err)) from None


def update(image: Image, core: dict[str, Any], props: dict[str, str]) -> None:
    """Write validated changes onto the row (tags replace the whole set)."""
    for key, value in core.items():
        if key == "tags":
            current = {t.value: t for t in image.tags}
            image.tags = [current.get(v) or ImageTag(value=v) for v in value]
        else:
            setattr(image, key, value)
    # A new dict, since the JSON column does not track changes made in place.
    image.properties = dict(props)
    image.updated_at = utcnow()


def _location(request: Request, out: dict[str, Any]) -> str:
    return controller(request).base_url + "/image" + out["self"]
