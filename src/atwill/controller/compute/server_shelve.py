"""The shelve, shelveOffload and unshelve server actions, with Nova's microversion rules.

Unshelve's body: anything before 2.77 (ignored); from 2.77 null or
``{"availability_zone": NAME}``; from 2.91 null or an object with an optional
``availability_zone`` (a name, or null to unpin the server) and ``host`` (admins).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, Conflict
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import shown
from ..context import Controller
from ..db.models import Instance, Node
from ..servers import shelve, zones
from ..service import authorize

NAMES = ("shelve", "shelveOffload", "unshelve")
UNSET = object()  # no availability_zone in the body (None is "unpin")


def run(session: Session, ctl: Controller, inst: Instance, name: str, args: Any,
        request_id: str, creds: Credentials, version: Version) -> None:
    """One of NAMES on inst (the caller checked the lock and answers 202)."""
    if name == "shelve":
        shelve.shelve(session, inst, creds, request_id)
    elif name == "shelveOffload":
        authorize(creds, "compute:servers:shelve_offload", project_id=inst.project_id)
        shelve.shelve_offload(session, inst, creds, request_id)
    else:
        zone, host = parse_unshelve(args, version)
        _unshelve(session, ctl, inst, zone, host, request_id, creds)


def parse_unshelve(args: Any, version: Version) -> tuple[Any, str | None]:
    """(availability_zone or UNSET, host) from the body, or a 400 as Nova's schema gives."""
    if not version >= "2.77":
        return UNSET, None
    if args is None:
        return UNSET, None
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid input for field/attribute unshelve. Value: {shown(args)}. "
                         f"{shown(args)} is not of type 'object', 'null'")
    allowed = {"availability_zone"} if not version >= "2.91" else {"availability_zone", "host"}
    extra = sorted(set(args) - allowed)
    if extra:
        raise BadRequest(f"Invalid input for field/attribute unshelve. Additional properties "
                         f"are not allowed ({', '.join(map(repr, extra))} was unexpected)")
    if not version >= "2.91":
        if "availability_zone" not in args:
            raise BadRequest("Invalid input for field/attribute unshelve. 'availability_zone' "
                             "is a required property")
        return _zone_name(args["availability_zone"]), None
    zone = args.get("availability_zone", UNSET)
    if zone is not UNSET and zone is not None and not isinstance(zone, str):
        raise BadRequest(f"Invalid input for field/attribute availability_zone. Value: "
                         f"{shown(zone)}. {shown(zone)} is not of type 'string', 'null'")
    host = args.get("host")
    if "host" in args and not isinstance(host, str):
        raise BadRequest(f"Invalid input for field/attribute host. Value: {shown(host)}. "
                         f"{shown(host)} is not of type 'string'")
    return zone, host


def _zone_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or value != value.strip():
        raise BadRequest(f"Invalid input for field/attribute availability_zone. Value: "
                         f"{shown(value)}. A name of 1 to 255 characters, not starting or "
                         "ending with whitespace, is required.")
    return value


def _unshelve(session: Session, ctl: Controller, inst: Instance, zone: Any,
              host: str | None, request_id: str, creds: Credentials) -> None:
    """Nova's compute API checks, in its order, then the scheduling."""
    shelve.check(inst, "unshelve", shelve.UNSHELVE_FROM)
    zone_passed = zone is not UNSET
    if (zone_passed or host) and inst.vm_state != "shelved_offloaded":
        raise Conflict(f'Specifying an availability zone or a host when unshelving server '
                       f'"{inst.id}" with status "{inst.vm_state}" is not supported. The '
                       'server status must be SHELVED_OFFLOADED.')
    if zone_passed and zone:
        zones.require(session, zone)
    expected_zone = zone if zone_passed else inst.availability_zone
    if host:
        authorize(creds, "compute:servers:unshelve_to_host", project_id=inst.project_id)
        host_zone = session.scalar(select(Node.availability_zone).where(Node.name == host))
        if host_zone is None:
            raise BadRequest(f"Compute host {host} could not be found.")
        if expected_zone is not None and host_zone != expected_zone:
            raise Conflict(f'Host "{host}" is not in the availability zone '
                           f'"{expected_zone}".')
        inst.requested_host, inst.force_host = host, False
    inst.availability_zone = expected_zone
    shelve.unshelve(session, ctl, inst, creds, request_id)
