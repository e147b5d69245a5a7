"""Which nodes a change concerns: the ids of the nodes whose desired state it may change.

A change names its nodes when it bumps the revision (revision.bump); the rows a
transaction changed in the tables that reach across nodes — ports, their addresses and
groups, networks, subnets, routers, floating IPs, security groups, volumes and their
attachments — are followed here at each flush, so the nodes those rows concern are
added at commit whatever the caller named. None stands for every node: what this module
cannot place concerns everyone. A savepoint rolled back forgets the rows changed in it
(savepoint_info), not those changed before it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, inspect, or_, select
from sqlalchemy.orm import Session

from . import savepoint_info
from .db.live_migrations import Migration
from .db.models import Evacuation, Instance, Node
from .db.network import (
    FloatingIP,
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from .db.volume import Volume, VolumeAttachment

log = logging.getLogger("atwill.revision")
TRACK = "atwill.node_scope"
EVERY = "*"  # in Touched.nodes: a row could not be placed, every node is concerned
Nodes = set[str] | None  # None: every node
# Actions on a server that change its own node's desired state only (beside the rows
# followed here, e.g. a security group's ports): the others may move it or its disk.
ONE_NODE_ACTIONS = {"os-stop", "os-start", "pause", "unpause", "suspend", "resume",
                    "reboot", "lock", "unlock", "addSecurityGroup", "removeSecurityGroup"}
# A migration in any other state may still have the server on two nodes.
ENDED = ("completed", "error", "failed", "cancelled", "confirmed", "reverted", "done")
MOVES = ("migrat", "resiz", "evacuat", "shelv", "unshelv")
# Rows no node's desired state reads.
UNSEEN = {"NetworkQuota", "DefaultSecurityGroup", "SubnetPool", "InstanceAction",
          "InstanceActionEvent"}


@dataclass
class Touched:
    """What a transaction's flushes changed, by kind."""

    networks: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    ports: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)  # node names
    routers: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)
    instances: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)  # node ids
    others: set[str] = field(default_factory=set)  # names of rows not followed


def _values(obj: Any, name: str) -> set[Any]:
    """The attribute's value now and before this flush (a move concerns both ends)."""
    history = inspect(obj).attrs[name].history
    return {v for v in (*history.deleted, getattr(obj, name)) if v}


def _track_port(t: Touched, port: Port, deleted: bool) -> None:
    t.ports.add(port.id)
    t.networks |= _values(port, "network_id")
    t.hosts |= _values(port, "host_id")
    # Before its INSERT a new row's column defaults are not applied yet (None).
    if (port.device_owner or "").startswith("network:router"):
        t.routers |= _values(port, "device_id")
    if deleted:  # its group rows go with it: the groups' members change
        t.groups |= {g.security_group_id for g in port.groups}


def _track(t: Touched, obj: Any, deleted: bool) -> None:
    if isinstance(obj, Port):
        _track_port(t, obj, deleted)
    elif isinstance(obj, PortSecurityGroup | IPAllocation):
        t.ports.add(obj.port_id)
        if isinstance(obj, PortSecurityGroup):
            t.groups.add(obj.security_group_id)
    elif isinstance(obj, SecurityGroup):
        t.groups.add(obj.id)
    elif isinstance(obj, SecurityGroupRule):
        t.groups |= _values(obj, "security_group_id")
    elif isinstance(obj, Network):
        t.networks.add(obj.id)
    elif isinstance(obj, Subnet):
        t.networks |= _values(obj, "network_id")
    elif isinstance(obj, Router):
        t.routers.add(obj.id)
    elif isinstance(obj, FloatingIP):
        t.ports |= _values(obj, "port_id")
    elif isinstance(obj, Volume):
        t.volumes.add(obj.id)
        t.nodes |= _values(obj, "node_id")
    elif isinstance(obj, VolumeAttachment):
        t.volumes.add(obj.volume_id)
        t.instances |= _values(obj, "instance_id")
        t.nodes |= _values(obj, "node_id")
    elif isinstance(obj, Instance):
        # Its nodes, before and after (placed, released, moved); to a network change a
        # server's row is still one it cannot place.
        t.nodes |= _values(obj, "node_id")
        t.others.add("Instance")
    elif type(obj).__name__ not in UNSEEN:
        t.others.add(type(obj).__name__)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    touched = session.info.get(TRACK)
    if touched is None:
        touched = session.info[TRACK] = Touched()
    changed = [(o, False) for o in session.new] + [(o, True) for o in session.deleted] + [
        (o, False) for o in session.dirty if session.is_modified(o, include_collections=False)]
    for obj, deleted in changed:
        try:
            _track(touched, obj, deleted)
        except Exception:  # noqa: BLE001 - a row it cannot read concerns every node
            log.exception("could not tell which nodes a %s concerns", type(obj).__name__)
            touched.others.add(type(obj).__name__)
            touched.nodes.add(EVERY)


savepoint_info.keep(TRACK)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if savepoint_info.outermost(session):
        session.info.pop(TRACK, None)


def touched(session: Session, strict: bool) -> Nodes:
    """The nodes the rows changed so far in this transaction concern. Strict: rows of a
    kind not followed here make it every node (else the caller named what they concern)."""
    t: Touched = session.info.get(TRACK) or Touched()
    if (strict and t.others) or EVERY in t.nodes:
        return None
    return _resolve(session, t)


def _resolve(session: Session, t: Touched) -> set[str]:
    networks, groups, hosts = set(t.networks), set(t.groups), set(t.hosts)
    if t.ports:
        for network_id, host_id in session.execute(select(Port.network_id, Port.host_id)
                                                   .where(Port.id.in_(t.ports))):
            networks.add(network_id)
            hosts.add(host_id)
        groups |= set(session.scalars(select(PortSecurityGroup.security_group_id)
                                      .where(PortSecurityGroup.port_id.in_(t.ports))))
    # A router's interfaces and gateway are in the desired state of every node serving
    # one of its networks: a change on one of them reaches the router's other networks.
    routers = t.routers | set(session.scalars(select(Port.device_id).where(
        Port.network_id.in_(networks), Port.device_owner.startswith("network:router"))))
    if routers:
        networks |= set(session.scalars(select(Port.network_id).where(
            Port.device_id.in_(routers), Port.device_owner.startswith("network:router"))))
    if groups:  # the groups whose rules name a changed group see its members change
        groups |= set(session.scalars(select(SecurityGroupRule.security_group_id)
                                      .where(SecurityGroupRule.remote_group_id.in_(groups))))
        hosts |= set(session.scalars(select(Port.host_id).distinct().join(
            PortSecurityGroup, PortSecurityGroup.port_id == Port.id).where(
            PortSecurityGroup.security_group_id.in_(groups))))
    if networks:
        # One row a host, not a port: a shared network's every create resolves this
        # while it holds the write (SQLite) or its project's lock (PostgreSQL).
        hosts |= set(session.scalars(select(Port.host_id).distinct().where(
            Port.network_id.in_(networks))))
    nodes = set(t.nodes) | _volume_nodes(session, t)
    hosts.discard("")
    if hosts:
        nodes |= set(session.scalars(select(Node.id).where(Node.name.in_(hosts))))
    return nodes


def _volume_nodes(session: Session, t: Touched) -> set[str]:
    """The nodes holding the volumes changed, and those of the servers attached to them."""
    if not t.volumes and not t.instances:
        return set()
    found = set(session.scalars(select(Volume.node_id).where(Volume.id.in_(t.volumes))))
    attached = select(VolumeAttachment.instance_id).where(
        VolumeAttachment.volume_id.in_(t.volumes))
    found |= set(session.scalars(select(Instance.node_id).where(
        or_(Instance.id.in_(attached), Instance.id.in_(t.instances)))))
    # A live migration's destination: it is given the server once the volumes' exports
    # admit it (servers/live_migration_volumes.py).
    found |= set(session.scalars(select(Migration.dest_node_id).where(
        or_(Migration.instance_uuid.in_(attached), Migration.instance_uuid.in_(t.instances)),
        Migration.status.not_in(ENDED))))
    return {n for n in found if n}


def of_instance(session: Session, inst: Instance, action: str | None = None) -> Nodes:
    """The nodes a change to this server concerns: its node and those of its volumes (a
    deleted one's: the node that destroys it); every node while it has none, or moves
    (or is about to, by this action)."""
    if action is not None and action not in ONE_NODE_ACTIONS:
        return None
    if inst.node_id is None:
        if not inst.deleted or not inst.node_name:
            return None
        return set(session.scalars(select(Node.id).where(Node.name == inst.node_name)))
    if inst.vm_state == "resized" or any(w in (inst.task_state or "") for w in MOVES):
        return None
    moving = session.scalar(select(Migration.id).where(
        Migration.instance_uuid == inst.id, Migration.status.not_in(ENDED)).limit(1))
    evacuating = session.scalar(select(Evacuation.id).where(
        Evacuation.instance_id == inst.id,
        or_(Evacuation.status.in_(("pending", "rebuilding")),
            Evacuation.cleaned_at.is_(None))).limit(1))
    if moving is not None or evacuating is not None:
        return None
    volumes = session.scalars(select(Volume.node_id).join(
        VolumeAttachment, VolumeAttachment.volume_id == Volume.id).where(
        VolumeAttachment.instance_id == inst.id))
    return {inst.node_id, *(n for n in volumes if n)}
