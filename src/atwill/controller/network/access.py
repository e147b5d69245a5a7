"""Who sees what, enforced in the queries: a project sees its own resources, plus shared
and external networks (and their subnets); admins see everything."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select, true
from sqlalchemy.orm import Session

from ...core.errors import Forbidden, NotFound
from ...core.policy import Credentials, allowed
from ...core.text import SHOWN, shown
from ..db.network import (
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    SubnetPool,
)
from .common import fault

M = TypeVar("M")
NAMES = {Network: "Network", Subnet: "Subnet", Port: "Port", Router: "Router",
         FloatingIP: "FloatingIP", SecurityGroup: "SecurityGroup",
         SecurityGroupRule: "SecurityGroupRule", SubnetPool: "SubnetPool"}
# Subnet pool operations are judged by the rule of their subnet or network counterpart
# (Neutron's defaults are the same: member for CRUD on one's own, admin to share or make
# a pool the default), while errors still name the operation asked for.
SAME_RULE = {"network:get_subnetpool": "network:get_subnet",
             "network:create_subnetpool": "network:create_subnet",
             "network:update_subnetpool": "network:update_subnet",
             "network:delete_subnetpool": "network:delete_subnet",
             "network:create_subnetpool:shared": "network:create_network:shared",
             "network:create_subnetpool:is_default": "network:create_network:shared",
             "network:update_subnetpool:is_default": "network:create_network:shared"}


def own(creds: Credentials, model: Any) -> ColumnElement[bool]:
    return model.project_id == (creds.project_id or "")


def visible(creds: Credentials, model: Any) -> ColumnElement[bool]:
    """The filter every query on model applies for this caller."""
    if creds.reads_all:
        return true()
    if model is Network:
        return or_(own(creds, Network), Network.shared, Network.external)
    if model is Subnet:
        public = select(Network.id).where(or_(Network.shared, Network.external))
        return or_(own(creds, Subnet), Subnet.network_id.in_(public))
    if model is SubnetPool:
        return or_(own(creds, SubnetPool), SubnetPool.shared)
    if model is SecurityGroupRule:
        mine = select(SecurityGroup.id).where(own(creds, SecurityGroup))
        return or_(own(creds, SecurityGroupRule), SecurityGroupRule.security_group_id.in_(mine))
    return own(creds, model)


def query(creds: Credentials, model: type[M]) -> Select[tuple[M]]:
    order = (model.created_at, model.id)  # type: ignore[attr-defined]
    return select(model).where(visible(creds, model)).order_by(*order)


def find(session: Session, creds: Credentials, model: type[M], ident: str,
         lock: bool = False) -> M:
    """The resource if the caller may see it; a Neutron 404 (never a 403) otherwise."""
    if not isinstance(ident, str):
        raise fault(NotFound, f"{NAMES[model]}NotFound",
                    f"{NAMES[model]} {shown(ident)} could not be found.")
    stmt = select(model).where(model.id == ident,  # type: ignore[attr-defined]
                               visible(creds, model))
    if lock:
        # Lock the row itself only: eager outer joins (a router's gateway port) cannot be.
        stmt = stmt.with_for_update(of=model)
    found = session.scalar(stmt)
    if found is None:
        name = NAMES[model]
        # Ids come from bodies too: a long one is quoted cut, not echoed whole.
        shown_id = ident if len(ident) <= SHOWN else shown(ident)
        raise fault(NotFound, f"{name}NotFound", f"{name} {shown_id} could not be found.")
    return found


def check(creds: Credentials, operation: str, project_id: str | None) -> None:
    """Neutron's policy failure: 403 with the operation named."""
    if not allowed(creds, SAME_RULE.get(operation, operation), project_id=project_id):
        raise fault(Forbidden, "PolicyNotAuthorized",
                    f"(rule:{operation.removeprefix('network:')}) is disallowed by policy. "
                    f"Policy doesn't allow {operation} to be performed.")


def may_write(creds: Credentials, operation: str, resource: Any) -> None:
    """Writes need the member role on the resource's own project (shared is read-only)."""
    check(creds, operation, resource.project_id)
