"""Subnets allocated from a subnet pool: which pool, and which CIDR it hands out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ipam
from ...core import subnetpools as sp
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import Network, Subnet, SubnetPool
from . import access
from .common import fault, flag
from .subnetpools import allocated


def pool_for(session: Session, creds: Credentials, data: dict[str, Any]) -> SubnetPool | None:
    """The pool named by subnetpool_id, or the default one of the family when asked."""
    pool_id = data.get("subnetpool_id")
    if pool_id is not None:
        # Locked: two subnets allocated at once must not both take the first free prefix.
        return access.find(session, creds, SubnetPool, pool_id, lock=True)
    if not flag(data, "use_default_subnetpool", False):
        if data.get("prefixlen") is not None:
            raise BadRequest("Invalid input: prefixlen is only allowed with a subnet pool.")
        return None
    version = data.get("ip_version", 4)
    # Every project may allocate from the default pool, shared or not, as in Neutron.
    pool = session.scalar(select(SubnetPool).where(
        SubnetPool.is_default, SubnetPool.ip_version == version).with_for_update())
    if pool is None:
        raise BadRequest(f"Invalid input for operation: No default subnetpool found for "
                         f"IPv{version}.")
    return pool


def carve(session: Session, pool: SubnetPool, data: dict[str, Any], project: str,
          network: Network) -> str:
    """The CIDR a new subnet gets from pool: the one asked for if free, else the first
    free prefix of the asked (or the pool's default) length."""
    if data.get("ip_version", pool.ip_version) != pool.ip_version:
        raise BadRequest(f"Invalid input: ip_version {data.get('ip_version')} does not match "
                         f"the subnet pool's (IPv{pool.ip_version}).")
    _affinity(session, network, pool)
    prefixes, used = sp.from_text(pool.prefixes), allocated(session, pool.id)
    limits = {"min_prefixlen": pool.min_prefixlen, "max_prefixlen": pool.max_prefixlen}
    try:
        if data.get("cidr") is not None:
            if data.get("prefixlen") is not None:
                raise BadRequest("Invalid input: give either cidr or prefixlen, not both.")
            net = ipam.parse_cidr(data["cidr"], pool.ip_version)
            sp.check_request(net, prefixes, limits)
            if any(net.overlaps(u) for u in used):
                raise sp.PoolExhausted(f"Cidr {net} overlaps a subnet already allocated "
                                       "from the pool.")
        else:
            length = data.get("prefixlen")
            length = pool.default_prefixlen if length is None else \
                sp.prefix_length(length, "prefixlen", pool.ip_version)
            if not limits["min_prefixlen"] <= length <= limits["max_prefixlen"]:
                raise sp.InvalidPool(f"Unable to allocate subnet with prefix length {length}, "
                                     f"allowed are {pool.min_prefixlen} to "
                                     f"{pool.max_prefixlen}.")
            net = sp.allocate(prefixes, used, length)
    except (sp.InvalidPool, ipam.InvalidSubnet) as err:
        raise BadRequest(f"Invalid input for operation: {err}") from None
    except sp.PoolExhausted as err:
        raise fault(Conflict, "SubnetAllocationError", f"Failed to allocate subnet: {err}") \
            from None
    _quota(session, pool, project, net)
    return str(net)


def _affinity(session: Session, network: Network, pool: SubnetPool) -> None:
    others = session.scalars(select(Subnet.subnetpool_id).where(
        Subnet.network_id == network.id, Subnet.ip_version == pool.ip_version))
    if any(other != pool.id for other in others):
        raise fault(BadRequest, "NetworkSubnetPoolAffinityError", "Subnets hosted on the "
                    "same network must be allocated from the same subnet pool.")


def _quota(session: Session, pool: SubnetPool, project: str, net: sp.Net) -> None:
    if pool.default_quota is None:
        return
    mine = sp.from_text(session.scalars(select(Subnet.cidr).where(
        Subnet.subnetpool_id == pool.id, Subnet.project_id == project)))
    if sum(sp.quota_units(n) for n in mine) + sp.quota_units(net) > pool.default_quota:
        raise fault(Conflict, "SubnetPoolQuotaExceeded", "Per-tenant subnet pool prefix "
                    "quota exceeded.")
