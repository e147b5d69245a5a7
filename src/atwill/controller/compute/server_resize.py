"""The resize, migrate (cold), confirmResize and revertResize server actions."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ...core import resize_states
from ...core.errors import BadRequest
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.models import Instance
from ..servers import builds, resize
from ..service import authorize

NAMES = ("resize", "migrate", "confirmResize", "revertResize")


def run(session: Session, ctl: Controller, inst: Instance, name: str, args: Any,
        request_id: str, creds: Credentials, version: Version) -> None:
    """One of NAMES on inst (the caller checked the lock and answers 202)."""
    if name == "resize":
        body = resize_states.parse_resize(args)
        try:
            flavor = builds.find_flavor(session, body.flavor_ref or "", creds)
        except BadRequest:
            raise BadRequest("Unable to locate requested flavor.") from None
        resize.start(session, ctl, inst, builds.flavor_snapshot(flavor), None, request_id,
                     creds)
    elif name == "migrate":
        authorize(creds, "compute:servers:migrate", project_id=inst.project_id)
        body = resize_states.parse_migrate(args, version)
        resize.start(session, ctl, inst, None, body.host, request_id, creds)
    elif name == "confirmResize":
        resize_states.check_null_body(name, args)
        resize.confirm(session, inst, request_id, creds.user_id)
    else:
        resize_states.check_null_body(name, args)
        resize.revert(session, inst, request_id, creds.user_id)
