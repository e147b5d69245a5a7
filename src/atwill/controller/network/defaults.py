"""The networks `atwill up` and the lab start with: `public` (external, flat) and, for
the admin project, `private` with a subnet and `router1` between them. Idempotent."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ipam, l2
from ...core.policy import Credentials
from ..db.network import Network, Port, Router, Subnet
from .interfaces import port_for_subnet
from .networks import segment
from .routers import INTERFACE, set_gateway

PUBLIC_CIDR = "203.0.113.0/24"
PRIVATE_CIDR = "10.0.0.0/24"
PHYSNET = "public"


def ensure_defaults(session: Session, admin_project_id: str, public_cidr: str = PUBLIC_CIDR,
                    private_cidr: str = PRIVATE_CIDR,
                    underlay_mtu: int = l2.UNDERLAY_MTU) -> list[str]:
    """Create whatever of public, private and router1 is missing; say what was made."""
    changes: list[str] = []
    public = _network(session, "public", admin_project_id, changes, underlay_mtu,
                      {"router:external": True, "provider:network_type": "flat",
                       "provider:physical_network": PHYSNET})
    _subnet(session, public, "public-subnet", public_cidr, changes, pool=(10, 250))
    private = _network(session, "private", admin_project_id, changes, underlay_mtu, {})
    subnet = _subnet(session, private, "private-subnet", private_cidr, changes)
    router = session.scalar(select(Router).where(Router.name == "router1",
                                                 Router.project_id == admin_project_id))
    if router is None:
        router = Router(project_id=admin_project_id, name="router1")
        session.add(router)
        session.flush()
        changes.append("created router router1")
    admin = Credentials(user_id="bootstrap", roles=frozenset({"admin"}),
                        project_id=admin_project_id, is_admin_project=True)
    if router.gw_port is None:
        set_gateway(session, admin, router, {"network_id": public.id})
        changes.append("set router1's gateway to public")
    if not any(a.subnet_id == subnet.id for p in _interfaces(session, router)
               for a in p.fixed_ips):
        port_for_subnet(session, admin, router, subnet.id)
        changes.append("added private-subnet to router1")
    session.flush()
    return changes


def _network(session: Session, name: str, project_id: str, changes: list[str],
             underlay_mtu: int, provider: dict) -> Network:
    found = session.scalar(select(Network).where(Network.name == name,
                                                 Network.project_id == project_id))
    if found is not None:
        return found
    network = Network(project_id=project_id, name=name,
                      external=provider.pop("router:external", False),
                      **segment(session, provider, underlay_mtu))
    session.add(network)
    session.flush()
    changes.append(f"created network {name}")
    return network


def _subnet(session: Session, network: Network, name: str, cidr: str, changes: list[str],
            pool: tuple[int, int] | None = None) -> Subnet:
    for subnet in network.subnets:
        if subnet.name == name:
            return subnet
    net = ipam.parse_cidr(cidr)
    gateway = ipam.first_host(net)
    pools = ipam.default_pools(net, gateway)
    if pool is not None and net.num_addresses > pool[1]:
        pools = [(net.network_address + pool[0], net.network_address + pool[1])]
    subnet = Subnet(network_id=network.id, project_id=network.project_id, name=name,
                    ip_version=net.version, cidr=str(net), gateway_ip=str(gateway),
                    allocation_pools=ipam.pools_api(pools), dns_nameservers=[],
                    host_routes=[], enable_dhcp=not network.external)
    network.subnets.append(subnet)
    session.flush()
    changes.append(f"created subnet {name} {cidr}")
    return subnet


def _interfaces(session: Session, router: Router) -> list[Port]:
    return list(session.scalars(select(Port).where(Port.device_id == router.id,
                                                   Port.device_owner == INTERFACE)))

