"""Heat's custom parameter constraints (nova.flavor, glance.image, neutron.network, …):
the value names something the stack's project can use, checked before anything is made.

Heat looks these up through each service's client as the stack's user; here the same
visibility rules are read from the store in one short transaction. Constraints Heat has
but atwill does not know pass, as Heat lets an unknown custom constraint pass.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core.hot.errors import StackValidationFailed
from ...core.hot.params import Parameter
from ..context import Controller
from ..db.compute import Flavor, FlavorAccess, Keypair
from ..db.image import Image, ImageMember
from ..db.network import Network, Port, Router, SecurityGroup, Subnet
from ..db.volume import Volume


def _flavor(session: Session, project: str, user: str, value: str) -> str | None:
    access = select(FlavorAccess.flavor_id).where(FlavorAccess.project_id == project)
    found = session.scalar(select(Flavor.id).where(
        or_(Flavor.flavorid == value, Flavor.name == value),
        or_(Flavor.is_public.is_(True), Flavor.id.in_(access))))
    return None if found else f"The Flavor ({value}) could not be found."


def _image(session: Session, project: str, user: str, value: str) -> str | None:
    shared = select(ImageMember.image_id).where(ImageMember.member_id == project,
                                                ImageMember.status == "accepted")
    found = session.scalar(select(Image.id).where(
        or_(Image.id == value, Image.name == value),
        or_(Image.visibility.in_(("public", "community")), Image.owner == project,
            Image.id.in_(shared))))
    return None if found else f"The Image ({value}) could not be found."


def _keypair(session: Session, project: str, user: str, value: str) -> str | None:
    found = session.scalar(select(Keypair.id).where(Keypair.user_id == user,
                                                    Keypair.name == value))
    return None if found else f"The Key ({value}) could not be found."


def _neutron(model: Any, label: str, shared: bool = False) -> Any:
    def check(session: Session, project: str, user: str, value: str) -> str | None:
        seen = [model.project_id == project]
        if shared:
            seen += [model.shared.is_(True), model.external.is_(True)]
        found = session.scalar(select(model.id).where(
            or_(model.id == value, model.name == value), or_(*seen)))
        return None if found else f"Unable to find {label} with name or id '{value}'"
    return check


def _volume(session: Session, project: str, user: str, value: str) -> str | None:
    found = session.scalar(select(Volume.id).where(
        or_(Volume.id == value, Volume.name == value), Volume.project_id == project))
    return None if found else f"The Volume ({value}) could not be found."


def _address(kind: Any, what: str) -> Any:
    def check(session: Session, project: str, user: str, value: str) -> str | None:
        try:
            kind(value)
        except ValueError:
            return f"Invalid {what}: {value}"
        return None
    return check


CHECKS = {
    "nova.flavor": _flavor, "glance.image": _image, "nova.keypair": _keypair,
    "neutron.network": _neutron(Network, "network", shared=True),
    "neutron.subnet": _neutron(Subnet, "subnet"), "neutron.port": _neutron(Port, "port"),
    "neutron.router": _neutron(Router, "router"),
    "neutron.security_group": _neutron(SecurityGroup, "security_group"),
    "cinder.volume": _volume,
    "ip_addr": _address(ipaddress.ip_address, "IP address"),
    "net_cidr": _address(lambda v: ipaddress.ip_network(v, strict=False), "net cidr"),
}


def check(ctl: Controller, project_id: str, user_id: str, schemas: dict[str, Parameter],
          values: dict[str, Any]) -> None:
    """Refuse a parameter value its custom constraint does not find, as Heat says it."""
    wanted = [(p, name) for p in schemas.values() for name in p.custom_constraints()
              if name in CHECKS and values.get(p.name) not in (None, "")]
    if not wanted:
        return
    with ctl.db.session() as session:
        for param, name in wanted:
            value = values[param.name]
            items = value if isinstance(value, list) else [value]
            for item in items:
                problem = CHECKS[name](session, project_id, user_id, str(item))
                if problem:
                    raise StackValidationFailed(
                        f"Parameter '{param.name}' is invalid: Error validating value "
                        f"'{item}': {problem}")
