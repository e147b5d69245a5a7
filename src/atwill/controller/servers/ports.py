"""A server's network ports: requested at create, made and bound on schedule, freed on delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from ...core.errors import BadRequest, Conflict, Forbidden
from ...core.policy import Credentials
from ..context import Controller
from ..db.models import Instance
from ..db.network import Network, Port, SecurityGroup
from ..network import access
from ..network import ports as network_ports
from ..network.sgdefault import ensure_default

OWNER = "compute:nova"


def validate(session: Session, creds: Credentials, networks: Any) -> list[dict[str, Any]]:
    """The server's network requests as [{network|port, fixed_ip?, user_port?}]."""
    if networks in (None, "auto"):
        chosen = auto_network(session, creds)
        return [{"network": chosen}] if chosen else []
    if networks == "none":
        return []
    if not isinstance(networks, list):
        raise BadRequest("Invalid input for field 'networks': 'auto', 'none' or a list.")
    out = []
    for item in networks:
        if not isinstance(item, dict):
            raise BadRequest("Invalid input for field 'networks': each entry is an object.")
        if item.get("port"):
            port = access.find(session, creds, Port, str(item["port"]))
            if port.device_id:
                raise Conflict(f"Port {port.id} is still in use.")
            out.append({"port": port.id, "user_port": True})
        elif item.get("uuid"):
            entry: dict[str, Any] = {"network": _network_id(session, creds,
                                                            str(item["uuid"]))}
            if item.get("fixed_ip"):
                entry["fixed_ip"] = str(item["fixed_ip"])
            out.append(entry)
        else:
            raise BadRequest("Invalid input for field 'networks': each entry needs a uuid "
                             "or a port.")
    return out


def _network_id(session: Session, creds: Credentials, ident: str) -> str:
    """The id of the network if the caller may see it, else access.find's 404: its id
    alone (a Network loads its subnets too, a query a create's first step never uses).
    An external network that is not shared is an admin's to attach to, as in Nova
    (network:attach_external_network): everyone sees it, a member gets 403."""
    found = session.execute(select(Network.id, Network.external, Network.shared).where(
        Network.id == ident, access.visible(creds, Network))).first()
    if found is None:
        return access.find(session, creds, Network, ident).id
    if found.external and not found.shared and not creds.is_admin:
        raise Forbidden(f"It is not allowed to create an interface on external network "
                        f"{found.id}")
    return str(found.id)


def auto_network(session: Session, creds: Credentials) -> str | None:
    """The project's own network, else a shared one (never an external one)."""
    query = access.query(creds, Network).where(Network.external.is_(False))
    found = list(session.scalars(query))
    own = [n for n in found if n.project_id == creds.project_id]
    pick = (own or [n for n in found if n.shared])
    return pick[0].id if pick else None


def group_ids(session: Session, project_id: str, names: list[str]) -> list[str]:
    """The ids of the project's groups named (or with those ids); its default group made
    first if a name is not found (only then: it is there after a project's first create,
    and the two reads of ensure_default were a create's second step's 1.5 %)."""
    found = _named(session, project_id, names)
    if None in found:
        ensure_default(session, project_id)
        found = _named(session, project_id, names)
    ids = []
    for name, group_id in zip(names, found, strict=True):
        if group_id is None:
            raise BadRequest(f"Security group {name} not found for project {project_id}.")
        ids.append(group_id)
    return ids


def _named(session: Session, project_id: str, names: list[str]) -> list[str | None]:
    return [session.scalar(select(SecurityGroup.id).where(
        SecurityGroup.project_id == project_id,
        or_(SecurityGroup.id == name, SecurityGroup.name == name)).limit(1))
        for name in names]


def allocate(session: Session, ctl: Controller, inst: Instance, creds: Credentials) -> None:
    """Create (or take over) the ports the server asked for, bound to its node."""
    groups = group_ids(session, inst.project_id, inst.security_groups or ["default"])
    # Bound as bind() binds them, without reading them back (a new server has no others):
    # the ports made are inserted bound (status DOWN, the default), those taken updated.
    host = inst.node_name or ""
    for request in inst.requested_networks or []:
        if request.get("port"):
            port = session.get(Port, request["port"])
            port.device_id, port.device_owner = inst.id, OWNER
            port.host_id, port.status = host, "DOWN"
            continue
        # Its subnets (the addresses' pools) in the same statement.
        network = session.get(Network, request["network"],
                              options=[joinedload(Network.subnets)])
        if network is None:  # deleted since the create was checked
            raise BadRequest(f"Network {request['network']} could not be found.")
        wanted = [{"ip_address": request["fixed_ip"]}] if request.get("fixed_ip") else None
        attrs = {"device_owner": OWNER, "device_id": inst.id, "name": "", "host_id": host,
                 "security_groups": groups if network.port_security_enabled else None}
        network_ports.create(session, network, inst.project_id, attrs, wanted)


def of(session: Session, inst: Instance) -> list[Port]:
    return list(session.scalars(select(Port).where(Port.device_id == inst.id)
                                .order_by(Port.created_at, Port.id)))


def bind(session: Session, inst: Instance) -> None:
    for port in of(session, inst):
        port.host_id = inst.node_name or ""
        port.status = "DOWN"


def free(session: Session, inst: Instance) -> None:
    """Delete the ports made for the server; ports the user brought are only unbound."""
    user_ports = {r["port"] for r in inst.requested_networks or [] if r.get("port")}
    for port in of(session, inst):
        if port.id in user_ports:
            port.device_id, port.device_owner, port.host_id, port.status = "", "", "", "DOWN"
        else:
            network_ports.release(session, port)
