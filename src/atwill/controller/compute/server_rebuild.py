"""The rebuild server action: Nova's request keys and answer for each microversion."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ...core import imagefit
from ...core.errors import BadRequest, Conflict, Forbidden
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..compute.usage import project_limits
from ..db.models import Instance
from ..revision import bump
from ..servers import actions, builds, instance_state, view
from .common import base
from .server_input import access_ip, metadata

BASE_KEYS = {"imageRef", "name", "adminPass", "metadata", "preserve_ephemeral",
             "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"}
# (key, first microversion with it, first without it)
VERSIONED_KEYS = (("personality", "2.1", "2.57"), ("description", "2.19", None),
                  ("key_name", "2.54", None), ("user_data", "2.57", None),
                  ("trusted_image_certificates", "2.63", None), ("hostname", "2.90", None))
REBUILDABLE = frozenset({"active", "stopped", "error"})


def keys_for(version: Version) -> set[str]:
    keys = set(BASE_KEYS)
    for key, since, until in VERSIONED_KEYS:
        if version >= since and (until is None or not version >= until):
            keys.add(key)
    return keys


def parse(args: Any, version: Version) -> dict[str, Any]:
    """The request's fields, checked as Nova's rebuild schema for this microversion."""
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field/attribute rebuild: an object is required.")
    unknown = set(args) - keys_for(version)
    if unknown:
        raise BadRequest(f"Invalid input for field/attribute rebuild: additional properties "
                         f"are not allowed ({', '.join(sorted(unknown))} were unexpected).")
    if not isinstance(args.get("imageRef"), str) or not args["imageRef"]:
        raise BadRequest("Invalid input for field/attribute rebuild: 'imageRef' is a "
                         "required property.")
    if args.get("preserve_ephemeral") not in (None, False, True):
        raise BadRequest("Invalid input for field 'preserve_ephemeral': a boolean.")
    if args.get("preserve_ephemeral"):
        raise BadRequest("preserve_ephemeral is not supported by this cloud's hypervisor.")
    if args.get("trusted_image_certificates") is not None:
        raise BadRequest("Image certificate validation is not supported by this cloud.")
    for key in ("accessIPv4", "accessIPv6"):
        access_ip(args, key)
    if "name" in args:
        clean_name(args["name"], "name", required=True)
        if not str(args["name"]).strip():
            raise BadRequest("Invalid input for field 'name': it is blank.")
    if "adminPass" in args and not isinstance(args["adminPass"], str):
        raise BadRequest("Invalid input for field 'adminPass': a string is required.")
    if "metadata" in args:
        metadata(args["metadata"])
    if "description" in args and args["description"] is not None:
        clean_name(args["description"], "description")
    _personality(args.get("personality"))
    _user_data(args)
    return args


def _personality(files: Any) -> None:
    """Before 2.57: [{path, contents (base64)}]; accepted, not injected (no file injection)."""
    if files is None:
        return
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str)
            and isinstance(f.get("contents"), str) and set(f) <= {"path", "contents"}
            for f in files):
        raise BadRequest("Invalid input for field 'personality': [{\"path\": ..., "
                         "\"contents\": ...}].")
    for item in files:
        _b64(item["contents"], "personality.contents")


def _user_data(args: dict[str, Any]) -> None:
    value = args.get("user_data")
    if value is not None and (not isinstance(value, str) or len(value) > 65535):
        raise BadRequest("Invalid input for field 'user_data': base64 text of at most 65535 "
                         "characters, or null.")
    if value is not None:
        _b64(value, "user_data")


def _b64(value: str, key: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Invalid input for field '{key}': not valid base64.") from None


def run(session: Any, request: Request, inst: Instance, args: Any, creds: Credentials,
        version: Version) -> JSONResponse:
    """Check, record the action, ask the node for the new disk; answer as Nova."""
    fields = parse(args, version)
    instance_state.check(inst, "rebuild", REBUILDABLE)
    if inst.node_id is None:
        raise Conflict(f"Cannot 'rebuild' instance {inst.id}: it was never placed on a host "
                       "(delete it and create it again).")
    try:
        image = builds.find_image(session, fields["imageRef"], creds)
    except BadRequest:
        raise BadRequest("Cannot find image for rebuild") from None
    imagefit.check_fits(inst.memory_mb, inst.disk_gb, image.size, image.min_ram,
                        image.min_disk, image.virtual_size)
    _apply(session, inst, fields, creds)
    actions.start(session, inst.id, "rebuild", request.scope["state"]["request_id"],
                  creds.user_id, creds.project_id)
    inst.image_id, inst.task_state = image.id, "rebuilding"
    # Nova keeps a stopped server stopped after its rebuild; others come back running.
    if inst.vm_state != "stopped":
        inst.vm_state, inst.desired_power = "active", "running"
    inst.rebuild_serial += 1
    bump(session, of=inst)
    session.flush()
    password = fields.get("adminPass") or secrets.token_urlsafe(9)
    url = base(request)
    return JSONResponse({"server": {**answer(session, inst, version, url, creds),
                                    "adminPass": password}}, status_code=202,
                        headers={"Location": f"{url}/v2.1/servers/{inst.id}"})


def _apply(session: Any, inst: Instance, fields: dict[str, Any], creds: Credentials) -> None:
    if "name" in fields:
        inst.name = fields["name"]
    if "metadata" in fields:
        limit = project_limits(session, inst.project_id)["metadata_items"]
        if limit != -1 and len(fields["metadata"]) > limit:
            raise Forbidden(f"Quota exceeded for metadata_items: Requested "
                            f"{len(fields['metadata'])}, but the limit is {limit}.")
        inst.meta = dict(fields["metadata"])
    if "description" in fields:
        inst.description = fields["description"]
    if "key_name" in fields:
        keypair = builds.keypair_of(session, fields["key_name"], creds.user_id)
        inst.key_name = keypair.name if keypair else None
        inst.key_data = keypair.public_key if keypair else None
    if "user_data" in fields:
        inst.user_data = builds.decode_user_data(fields["user_data"])
    if "hostname" in fields:
        inst.hostname = builds.hostname_of(str(fields["hostname"]))


def answer(session: Any, inst: Instance, version: Version, url: str,
           creds: Credentials) -> dict[str, Any]:
    """2.75+: the full server (user_data in place of the admin's OS-EXT-SRV-ATTR one);
    before: the short view, with key_name from 2.54 and user_data from 2.57."""
    if version >= "2.75":
        out = view.detail(session, inst, version, url, creds, show=True)
        out.pop("OS-EXT-SRV-ATTR:user_data", None)
    else:
        out = view.partial(session, inst, version, url)
        if version >= "2.54":
            out["key_name"] = inst.key_name
    if version >= "2.57":
        out["user_data"] = view.user_data(inst)
    return out
