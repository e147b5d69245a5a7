"""What the HA monitor and the operator call: fence a node, test its devices, confirm by hand.

Levels are tried in order; every device of a level must succeed for the level to
(Pacemaker's fencing topology). Each run is recorded in fence_events and logged,
with every secret value redacted. The node's fence_* columns (migration 0009)
say the outcome; fenced_at is set only when the node is known off.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ha_health
from ...core.errors import Conflict
from ..context import Controller
from ..db.base import iso, utcnow
from ..db.models import FenceDevice, FenceEvent, Node
from . import devices, runner

log = logging.getLogger("atwill.fencing")
METHOD_LENGTH = 64  # nodes.fence_method


@dataclasses.dataclass(frozen=True)
class FenceResult:
    ok: bool
    method: str
    message: str


def fence_node(ctl: Controller, session: Session, node: Node,
               action: str = "off") -> FenceResult:
    """Power the node off through its fence devices, level by level; records the outcome.

    Runs the agents while the caller's session is open (devices are read first); a
    node without devices fails at once, so the operator can confirm by hand.
    """
    configured = devices.listing(session, node.name)
    if not configured:
        result = FenceResult(False, "none", f"no fence device is configured for node "
                             f"{node.name}; once it is off, run 'atwill node fence confirm "
                             f"{node.name}'")
        return _conclude(session, node, action, result)
    failures: list[str] = []
    for level, group in itertools.groupby(configured, key=lambda d: d.level):
        members = list(group)
        outcomes = [_run(ctl, session, node.name, d, action) for d in members]
        if all(o.ok for o in outcomes):
            method = "+".join(d.name for d in members)
            message = f"level {level} ({method}): {action} succeeded"
            return _conclude(session, node, action, FenceResult(True, method, message))
        failures.extend(f"level {level} {d.name}: {o.message}"
                        for d, o in zip(members, outcomes, strict=True) if not o.ok)
    return _conclude(session, node, action,
                     FenceResult(False, "none", "every fencing level failed: "
                                 + "; ".join(failures)))


def test_node(ctl: Controller, session: Session, node: Node) -> list[dict[str, Any]]:
    """`status` through every device of the node (nothing is powered off)."""
    configured = devices.listing(session, node.name)
    results = []
    for device in configured:
        outcome = _run(ctl, session, node.name, device, "status")
        results.append({"device": device.name, "agent": device.agent, "level": device.level,
                        "ok": outcome.ok, "power": outcome.power, "message": outcome.message})
    return results


def confirm(session: Session, node: Node) -> FenceResult:
    """The operator says the node is off (stonith_admin --confirm): it counts as fenced.

    Refused while the node still heartbeats: a node that answers is not off, and
    confirming it would let its instances run twice. A node the monitor found silent
    (suspect: late, or held so by a mass silence, ha/silence_guard) may be confirmed: it
    is then judged down, and evacuated, at the monitor's next pass.
    """
    if node.state == "up" and node.health == ha_health.UP:
        raise Conflict(f"Node {node.name} is up (it still sends heartbeats); confirm only a "
                       "node that is powered off.")
    if node.state == "up" and node.health != ha_health.SUSPECT:
        raise Conflict(f"Node {node.name} is up ({node.health}); confirm only a node that "
                       "is powered off and silent.")
    result = FenceResult(True, "manual", "confirmed powered off by an operator")
    session.add(FenceEvent(node_name=node.name, action="confirm", ok=True,
                           message=result.message))
    log.warning("node %s fenced: confirmed off by an operator", node.name)
    return _mark(node, result)


def history(session: Session, node_name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The node's latest fencing records, newest first."""
    rows = session.scalars(select(FenceEvent).where(FenceEvent.node_name == node_name)
                           .order_by(FenceEvent.id.desc()).limit(limit))
    return [{"at": iso(e.created_at), "action": e.action, "device": e.device,
             "level": e.level, "ok": e.ok, "message": e.message} for e in rows]


def _run(ctl: Controller, session: Session, node_name: str, device: FenceDevice,
         action: str) -> runner.Outcome:
    try:
        options, secret_values = devices.options_for_run(ctl, device)
    except RuntimeError as error:
        outcome = runner.Outcome(False, None, str(error))
    else:
        outcome = runner.run(device.agent, options, secret_values, action, node_name,
                             device.timeout)
    session.add(FenceEvent(node_name=node_name, device=device.name, agent=device.agent,
                           level=device.level, action=action, ok=outcome.ok,
                           message=outcome.message))
    log.log(logging.INFO if outcome.ok else logging.WARNING, "fence %s %s via %s (%s): %s",
            action, node_name, device.name, device.agent, outcome.message)
    return outcome


def _conclude(session: Session, node: Node, action: str, result: FenceResult) -> FenceResult:
    if not result.ok:
        session.add(FenceEvent(node_name=node.name, action=action, ok=False,
                               message=result.message))
        log.error("node %s NOT fenced: %s", node.name, result.message)
        node.fence_state, node.fence_message = "failed", result.message
        session.flush()
        return result
    log.warning("node %s fenced: %s", node.name, result.message)
    return _mark(node, result) if action in ("off", "reboot") else result


def _mark(node: Node, result: FenceResult) -> FenceResult:
    node.fence_state = "ok"
    node.fence_method = result.method[:METHOD_LENGTH]
    node.fence_message = result.message
    node.fenced_at = utcnow()
    return result


def status(session: Session, node: Node) -> dict[str, Any]:
    """The node's fencing as show returns it: state, devices (masked) and latest records."""
    return {"node": node.name, "fence_state": node.fence_state,
            "fence_method": node.fence_method, "fence_message": node.fence_message,
            "fenced_at": iso(node.fenced_at),
            "devices": [devices.to_view(d) for d in devices.listing(session, node.name)],
            "history": history(session, node.name)}
