"""How flavors look at each microversion, and which flavors a caller may see."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import Select, false, or_, select
from sqlalchemy.orm import Session

from ...core.errors import NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.compute import Flavor, FlavorAccess
from .common import links


def to_api(flavor: Flavor, request: Request, version: Version,
           detail: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": flavor.flavorid, "name": flavor.name,
                           "links": links(request, "flavors", flavor.flavorid)}
    if version >= "2.55":
        out["description"] = flavor.description
    if not detail:
        return out
    # Before 2.75 Nova rendered a zero swap as an empty string.
    swap: int | str = flavor.swap if flavor.swap or version >= "2.75" else ""
    out.update({
        "ram": flavor.ram, "vcpus": flavor.vcpus, "disk": flavor.disk, "swap": swap,
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral, "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": flavor.is_public, "rxtx_factor": flavor.rxtx_factor,
    })
    if version >= "2.61":
        out["extra_specs"] = flavor.specs
    return out


def accessible(creds: Credentials) -> Any:
    """Public flavors plus the private ones shared with the caller's project."""
    if creds.project_id is None:
        return Flavor.is_public
    shared = select(FlavorAccess.id).where(FlavorAccess.flavor_id == Flavor.id,
                                           FlavorAccess.project_id == creds.project_id)
    return or_(Flavor.is_public, shared.exists())


def visible(query: Select, creds: Credentials, is_public: bool | None,
            everything: bool) -> Select:
    """Restrict a flavor query to what the caller may list.

    Only admins may widen the listing with is_public; for everyone else the
    parameter is ignored, as in Nova, so private flavors never leak.
    """
    if not creds.is_admin:
        return query.where(accessible(creds))
    if everything:
        return query
    if is_public is False:
        return query.where(Flavor.is_public == false())
    return query.where(accessible(creds))


def get_flavor(session: Session, creds: Credentials, flavor_id: str) -> Flavor:
    """The flavor by its API id, or 404 when it is absent or hidden from the caller."""
    query = select(Flavor).where(Flavor.flavorid == flavor_id)
    if not creds.is_admin:
        query = query.where(accessible(creds))
    flavor = session.scalar(query)
    if flavor is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor
