"""Fence devices per node: set (create or replace), list, show masked, remove."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import fence_options
from ...core.errors import BadRequest, NotFound
from ..context import Controller
from ..db.base import iso
from ..db.models import FenceDevice
from . import secrets

MIN_TIMEOUT, MAX_TIMEOUT = 1, 300


def check_timeout(timeout: int) -> int:
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not (
            MIN_TIMEOUT <= timeout <= MAX_TIMEOUT):
        raise BadRequest(f"Invalid fence timeout {timeout!r}: expected {MIN_TIMEOUT} to "
                         f"{MAX_TIMEOUT} seconds.")
    return timeout


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not fence_options.OPTION_NAME.match(name.replace("-", "_")):
        raise BadRequest(f"Invalid fence device name {name!r}: lower-case letters, digits, "
                         "'-' and '_'.")
    return name


def set_device(ctl: Controller, session: Session, node_name: str, agent: str,
               options: dict[str, str], level: int = 1, name: str | None = None,
               timeout: int = 30) -> FenceDevice:
    """Create the node's device `name` (default: the agent's name), or replace it wholly."""
    fence_options.check_agent(agent)
    fence_options.check_options(options)
    fence_options.check_level(level)
    check_timeout(timeout)
    name = check_device_name(name or agent)
    plain, secret = fence_options.split_secrets(options)
    device = find(session, node_name, name, missing_ok=True)
    if device is None:
        device = FenceDevice(node_name=node_name, name=name)
        session.add(device)
    device.agent, device.level, device.timeout = agent, level, timeout
    device.options = plain
    device.secret_names = sorted(secret)
    device.secrets = secrets.encrypt(ctl.settings.state_dir, secret)
    session.flush()
    return device


def listing(session: Session, node_name: str | None = None) -> list[FenceDevice]:
    """Devices in the order they are tried: by node, level, then name."""
    query = select(FenceDevice).order_by(FenceDevice.node_name, FenceDevice.level,
                                         FenceDevice.name)
    if node_name is not None:
        query = query.where(FenceDevice.node_name == node_name)
    return list(session.scalars(query))


def find(session: Session, node_name: str, name: str,
         missing_ok: bool = False) -> FenceDevice | None:
    device = session.scalar(select(FenceDevice).where(FenceDevice.node_name == node_name,
                                                      FenceDevice.name == name))
    if device is None and not missing_ok:
        raise NotFound(f"Node {node_name} has no fence device named {name!r}.")
    return device


def remove(session: Session, node_name: str, name: str | None) -> int:
    """Remove one device, or all of the node's; how many went."""
    doomed = [find(session, node_name, name)] if name else listing(session, node_name)
    if not doomed:
        raise NotFound(f"Node {node_name} has no fence device.")
    for device in doomed:
        session.delete(device)
    session.flush()
    return len(doomed)


def to_view(device: FenceDevice) -> dict[str, Any]:
    """What show and list return: every secret masked, by name only."""
    return {"node": device.node_name, "name": device.name, "agent": device.agent,
            "level": device.level, "timeout": device.timeout,
            "options": fence_options.masked(dict(device.options), list(device.secret_names)),
            "updated_at": iso(device.updated_at)}


def options_for_run(ctl: Controller, device: FenceDevice) -> tuple[dict[str, str], list[str]]:
    """(all options, secret values) for running the agent; the values only for redaction."""
    secret = secrets.decrypt(ctl.settings.state_dir, device.secrets)
    return {**device.options, **secret}, list(secret.values())
