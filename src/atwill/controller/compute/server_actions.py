"""/servers/{id}/action: power, reboot, rebuild, createImage, console, security groups,
lock and unlock."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ...core import serverlock
from ...core.errors import BadRequest, Conflict, Forbidden
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.models import Instance
from ..revision import bump
from ..servers import actions, builds, instance_state, snapshots, states
from ..service import authorize, caller, controller, json_body
from . import (
    server_evacuate,
    server_migrations,
    server_rebuild,
    server_resize,
    server_security_groups,
    server_shelve,
)
from .common import api_version

router = APIRouter()
POWER_ACTIONS = {"os-stop": "stop", "os-start": "start", "pause": "pause",
                 "unpause": "unpause", "suspend": "suspend", "resume": "resume"}
# Nova checks the lock in these actions' compute API; the others work on a locked server.
UNLOCKED_ONLY = {*POWER_ACTIONS, "reboot", "rebuild", "createImage",
                 *server_shelve.NAMES, "os-migrateLive", *server_resize.NAMES}


@router.post("/v2.1/servers/{server_id}/action", response_model=None)
def server_action_post(server_id: str, request: Request, body: dict = Depends(json_body),
                       creds: Credentials = Depends(caller),
                       version: Version = Depends(api_version)) -> Any:
    if len(body) != 1:
        raise BadRequest("An action request names exactly one action.")
    (name, args), = body.items()
    ctl = controller(request)
    with ctl.db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:action", project_id=inst.project_id)
        if name == "os-getConsoleOutput":
            return {"output": _console(inst, args)}
        if name in UNLOCKED_ONLY:
            refuse_locked(inst, creds)
        request_id = request.scope["state"]["request_id"]
        if name in ("lock", "unlock"):
            _lock(session, inst, name, args, request_id, creds, version)
        elif name in POWER_ACTIONS:
            _power(session, inst, name, request_id, creds)
        elif name == "reboot":
            _reboot(session, inst, args, request_id, creds)
        elif name == "rebuild":
            return server_rebuild.run(session, request, inst, args, creds, version)
        elif name == "addSecurityGroup":
            server_security_groups.add(session, inst, args)
        elif name == "removeSecurityGroup":
            server_security_groups.remove(session, inst, args)
        elif name == "createImage":
            return _create_image(session, request, inst, args, creds, version)
        elif name == "evacuate":
            return server_evacuate.run(session, ctl, inst, args, request_id, creds, version)
        elif name == "os-migrateLive":
            return server_migrations.run_live(session, ctl, inst, args, request_id, creds,
                                              version)
        elif name in server_resize.NAMES:
            server_resize.run(session, ctl, inst, name, args, request_id, creds, version)
        elif name in server_shelve.NAMES:
            server_shelve.run(session, ctl, inst, name, args, request_id, creds, version)
        else:
            raise BadRequest(f"The action {name!r} is not supported by this cloud.")
        bump(session, of=inst, action=name)
    return Response(status_code=202)


def refuse_locked(inst: Instance, creds: Credentials) -> None:
    """Nova's check_instance_lock: a locked instance is the admins' alone (409)."""
    if inst.locked and not creds.is_admin:
        raise Conflict(f"Instance {inst.id} is locked")


def _lock(session: Any, inst: Instance, name: str, args: Any, request_id: str,
          creds: Credentials, version: Version) -> None:
    if name == "lock":
        reason = serverlock.reason(args, version >= "2.73")
        side = serverlock.locked_by(inst.project_id, creds.project_id)
        if inst.locked and side == "owner":
            return  # Nova: the owner locking again changes nothing and records nothing
        inst.locked, inst.locked_by = True, side
        inst.locked_reason = reason or inst.locked_reason
    else:
        if not serverlock.may_unlock(inst.locked_by, inst.project_id, creds.project_id,
                                     creds.is_admin):
            raise Forbidden("Policy doesn't allow os_compute_api:os-lock-server:unlock:"
                            "unlock_override to be performed.")
        inst.locked, inst.locked_by, inst.locked_reason = False, None, None
    actions.start(session, inst.id, name, request_id, creds.user_id, creds.project_id)
    actions.event(session, inst.id, f"api_{name}", None)


def _power(session: Any, inst: Instance, name: str, request_id: str,
           creds: Credentials) -> None:
    allowed, task, power = states.ACTIONS[name]
    instance_state.check(inst, name, allowed)
    actions.start(session, inst.id, POWER_ACTIONS[name], request_id, creds.user_id,
                  creds.project_id)
    inst.task_state, inst.desired_power = task, power


def _reboot(session: Any, inst: Instance, args: Any, request_id: str,
            creds: Credentials) -> None:
    kind = args.get("type") if isinstance(args, dict) else None
    if kind not in ("SOFT", "HARD"):
        raise BadRequest("Invalid input for reboot: type must be SOFT or HARD.")
    allowed = states.ACTIONS["reboot"][0] if kind == "HARD" else frozenset({"active"})
    instance_state.check(inst, "reboot", allowed)
    actions.start(session, inst.id, "reboot", request_id, creds.user_id, creds.project_id)
    inst.task_state = "rebooting_hard" if kind == "HARD" else "rebooting"
    inst.vm_state = "active" if inst.vm_state != "error" or kind == "HARD" else inst.vm_state
    inst.desired_power, inst.reboot_hard = "running", kind == "HARD"
    inst.reboot_serial += 1


def _create_image(session: Any, request: Request, inst: Instance, args: Any,
                  creds: Credentials, version: Version) -> Response:
    name, meta = snapshots.parse(args)
    authorize(creds, "compute:servers:create_image", project_id=inst.project_id)
    image = snapshots.start(session, inst, creds, name, meta,
                            request.scope["state"]["request_id"])
    if version >= "2.45":
        return JSONResponse({"image_id": image.id}, status_code=202)
    location = f"{controller(request).base_url}/image/v2/images/{image.id}"
    return Response(status_code=202, headers={"Location": location})


def _console(inst: Instance, args: Any) -> str:
    length = args.get("length") if isinstance(args, dict) else None
    text = inst.console or ""
    if length is None:
        return text
    try:
        lines = int(length)
    except (TypeError, ValueError):
        raise BadRequest("Invalid input for os-getConsoleOutput: length must be an "
                         "integer.") from None
    if lines < -1:
        raise BadRequest("Invalid input for os-getConsoleOutput: length must be >= -1.")
    if lines == -1:
        return text
    return "\n".join(text.splitlines()[-lines:]) + ("\n" if lines else "")
