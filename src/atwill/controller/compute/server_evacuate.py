"""The evacuate server action, with Nova's microversion rules.

Before 2.14 the body must say onSharedStorage and the answer carries adminPass;
2.29 to 2.67 accept force; from 2.95 a stopped server stays stopped elsewhere.
There is no shared storage here: onSharedStorage=true is refused.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.models import Instance
from ..ha import evacuate
from ..revision import bump
from ..service import authorize


def allowed_keys(version: Version) -> set[str]:
    keys = {"host", "adminPass"}
    if not version >= "2.14":
        keys.add("onSharedStorage")
    if version >= "2.29" and not version >= "2.68":
        keys.add("force")
    return keys


def parse(args: Any, version: Version) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field/attribute evacuate: an object is required.")
    unknown = sorted(set(args) - allowed_keys(version))
    if unknown:
        raise BadRequest(f"Invalid input for field/attribute evacuate. Additional properties "
                         f"are not allowed ({', '.join(map(repr, unknown))} was unexpected)")
    host = args.get("host")
    if host is not None and (not isinstance(host, str) or not host.strip()
                             or len(host) > 255):
        raise BadRequest("Invalid input for field/attribute host: a host name is required.")
    for key in ("onSharedStorage", "force"):
        if key in args and not isinstance(args[key], bool):
            raise BadRequest(f"Invalid input for field/attribute {key}: a boolean.")
    password = args.get("adminPass")
    if password is not None and not isinstance(password, str):
        raise BadRequest("Invalid input for field/attribute adminPass: a string.")
    if not version >= "2.14":
        if "onSharedStorage" not in args:
            raise BadRequest("Invalid input for field/attribute evacuate: "
                             "'onSharedStorage' is a required property")
        if args["onSharedStorage"]:
            raise BadRequest("Invalid input for field/attribute onSharedStorage: this "
                             "cloud has no shared storage; evacuated servers are rebuilt "
                             "from their image.")
    if version >= "2.29" and args.get("force") and host is None:
        raise BadRequest("Can't force to a non-provided destination")
    return args


def run(session: Session, ctl: Controller, inst: Instance, args: Any, request_id: str,
        creds: Credentials, version: Version) -> Response:
    """Evacuate inst (admin only, as Nova's default policy); 200 as Nova answers."""
    authorize(creds, "compute:servers:evacuate", project_id=inst.project_id)
    body = parse(args, version)
    evacuate.evacuate(session, ctl, inst, host=body.get("host"),
                      force=bool(body.get("force")), reason="manual",
                      request_id=request_id, user_id=creds.user_id,
                      keep_stopped=version >= "2.95")
    bump(session)
    if version >= "2.14":
        return Response(status_code=200)
    return JSONResponse({"adminPass": body.get("adminPass") or secrets.token_urlsafe(9)},
                        status_code=200)
