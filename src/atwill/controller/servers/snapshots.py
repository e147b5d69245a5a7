"""Server snapshots (createImage): the image record, the node's request, and its outcome.

The API records a queued image and names it on the instance (snapshot_image_id),
which puts the request into the node's desired state. The node uploads the data
(cluster/snapshots.py) or reports why it could not; only then does the task
state clear. A node that never answers leaves the snapshot pending.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import imageattrs
from ...core.errors import BadRequest, Forbidden
from ...core.policy import Credentials
from ..compute.usage import project_limits
from ..db.models import Image, Instance, Project, User
from ..revision import bump
from . import actions, instance_state, states

EVENT = "compute_snapshot_instance"
# Nova's metadata keys (parameter_types.metadata).
META_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
# Base image properties that describe that image, not the snapshot (Nova's
# non-inheritable properties, and the checksums OSC records on upload).
NOT_INHERITED = ("img_signature", "cinder_encryption_key", "owner_specified.",
                 "image_location", "image_state")


def parse(args: Any) -> tuple[str, dict[str, str]]:
    """The name and metadata of a createImage body (Nova's schema), or a 400 saying why."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for createImage: an object with a name is required.")
    unknown = sorted(set(args) - {"name", "metadata"})
    if unknown:
        raise BadRequest(f"Invalid input for createImage: additional properties are not "
                         f"allowed ({', '.join(map(repr, unknown))}).")
    name = args.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or name != name.strip():
        raise BadRequest("Invalid input for field 'name': a string of 1 to 255 characters, "
                         "not starting or ending with whitespace, is required.")
    meta = args.get("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("Invalid input for field 'metadata': an object is required.")
    for key, value in meta.items():
        if not META_KEY.match(key) or not isinstance(value, str) or len(value) > 255:
            raise BadRequest(f"Invalid input for field 'metadata': {key!r} must be 1 to 255 "
                             "letters, digits or -_:. and its value a string of at most 255 "
                             "characters.")
        if key in imageattrs.CORE or key in imageattrs.READ_ONLY:
            raise BadRequest(f"Invalid input for field 'metadata': {key!r} is an image "
                             "attribute, not a property.")
        try:
            imageattrs.check_writable(key)
        except Forbidden as err:
            raise BadRequest(f"Invalid input for field 'metadata': {err.message}") from None
    return name, meta


def start(session: Session, inst: Instance, creds: Credentials, name: str,
          meta: dict[str, str], request_id: str) -> Image:
    """Record the queued image and ask the instance's node for its data."""
    instance_state.check(inst, "createImage", states.SNAPSHOT_FROM)
    limit = project_limits(session, inst.project_id)["metadata_items"]
    if meta and limit != -1 and len(meta) > limit:
        raise Forbidden("Image metadata limit exceeded")
    image = Image(owner=inst.project_id, **fields(session, inst, creds, name, meta))
    session.add(image)
    session.flush()
    actions.start(session, inst.id, "createImage", request_id, creds.user_id,
                  creds.project_id)
    inst.task_state, inst.snapshot_image_id = "image_snapshot", image.id
    bump(session, of=inst)
    return image


def fields(session: Session, inst: Instance, creds: Credentials, name: str,
           meta: dict[str, str]) -> dict[str, Any]:
    """The snapshot's core attributes and properties, as Nova gives them to Glance."""
    base = session.get(Image, inst.image_id) if inst.image_id else None
    props = {k: str(v) for k, v in ((base.properties or {}) if base else {}).items()
             if not k.startswith(NOT_INHERITED)}
    props.update(image_type="snapshot", instance_uuid=inst.id, user_id=creds.user_id)
    if inst.image_id:
        props["base_image_ref"] = inst.image_id
    user = session.get(User, creds.user_id)
    project = session.get(Project, creds.project_id) if creds.project_id else None
    if user is not None:
        props["owner_user_name"] = user.name
    if project is not None:
        props["owner_project_name"] = project.name
    props.update(meta)
    core, props = imageattrs.create_fields({
        "name": name, "visibility": "private", "disk_format": "qcow2",
        "container_format": "bare", "min_ram": base.min_ram if base else 0,
        "min_disk": max(inst.disk_gb, base.min_disk if base else 0), **props})
    return {**core, "properties": props}


def request(inst: Instance) -> dict[str, str] | None:
    """What the node must do for the instance's pending snapshot (its desired state)."""
    return {"image_id": inst.snapshot_image_id} if inst.snapshot_image_id else None


def pending(session: Session, image_id: str, lock: bool = False) -> Instance | None:
    """The live instance whose pending snapshot is image_id."""
    query = select(Instance).where(Instance.snapshot_image_id == image_id,
                                   Instance.deleted.is_(False))
    return session.scalar(query.with_for_update() if lock else query)


def uploading(inst: Instance) -> None:
    """The node began to upload the data."""
    shelving = inst.task_state in states.SHELVING_TASKS
    inst.task_state = "shelving_image_uploading" if shelving else "image_uploading"


def uploaded(session: Session, inst: Instance) -> None:
    """The node stored the data: the snapshot is done (a shelve goes on to offload)."""
    if inst.task_state in states.SHELVING_TASKS:
        from . import shelve  # noqa: PLC0415 - shelve builds on this module

        shelve.snapshotted(session, inst)
        return
    _end(session, inst)
    actions.event(session, inst.id, EVENT, inst.node_name)


def failed(session: Session, inst: Instance, message: str) -> None:
    """The node could not make or upload it: the image is deleted, as Nova does (a shelve
    ends with the server as it was, Nova's reverted task state)."""
    shelving = inst.task_state in states.SHELVING_TASKS
    actions.event(session, inst.id, "compute_shelve_instance" if shelving else EVENT,
                  inst.node_name, "Error", message)
    abandon(session, inst)


def abandon(session: Session, inst: Instance) -> None:
    """Drop the instance's unfinished snapshot (failed, or the instance is going away)."""
    if inst.snapshot_image_id is None:
        return
    image = session.get(Image, inst.snapshot_image_id)
    # Only an active image has data in the store; any other has none to remove.
    if image is not None and image.status != "active":
        session.delete(image)
    _end(session, inst)


def _end(session: Session, inst: Instance) -> None:
    inst.snapshot_image_id = None
    if inst.task_state in states.SNAPSHOT_TASKS | states.SHELVING_TASKS:
        inst.task_state = None
    bump(session, of=inst)
