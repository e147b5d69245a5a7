"""Fixed IPs for a port: requested ones checked, the others the lowest free in the pools.

Issue 19: concurrent transactions (server creates of several projects on one shared
network) read the same used addresses and picked the same lowest free one; the second to
insert waited for the first's commit on the (network_id, ip_address) unique index, then
failed, and its whole create answered 409. An address is now claimed by one statement
that cannot fail on that constraint, INSERT ... ON CONFLICT DO NOTHING, which on
PostgreSQL inserts only when it also gets a transaction advisory lock on (network,
address) with pg_try_advisory_xact_lock (keys: the network id's keyed hash and the
address's low 32 bits, so a tenant cannot grind addresses of its own subnet onto a
shared network's). A claim in flight holds that lock to its
commit, so a racer skips the address at once for the next free one instead of waiting on
the other's uncommitted row; an address committed since the used ones were read is left
alone by DO NOTHING. No savepoint, no retry of the transaction, and a lone claim still
gets the lowest free address. When every free address left is held by claims in flight
(which may roll back), the claim re-reads and waits for them, BUSY_WAIT (0.3 s) in all
per transaction (a create waits holding its compute node's row, which heartbeats need:
it was 3 s per address, and two creates each holding the address the other wanted made
a node's heartbeats go unrecorded long enough to be judged down); then, or at once when
none is free, Neutron's IpAddressGenerationFailure (409). A transaction holds at most
LOCK_CAP address locks (a bulk create of 1000 ports of 5 addresses took 5000, and
PostgreSQL's shared lock table has ~6,400 slots for everyone); past it, its claims still
skip addresses others hold but lock none of theirs (racers then wait on those rows).
A requested fixed IP taken (committed, or in flight and then committed: the insert
waits for that one) is IpAddressAlreadyAllocated (409), never retried; it takes the
lock when it can, so automatic claims skip it meanwhile. SQLite has one writer at a time:
the same statement without the lock.

bench creates, PostgreSQL, network, 8 projects, 50 nodes, 8 connections, 30 s, both
trees in one run (2026-12-07 14:29-14:34, 2 rounds): with the whole-create retry (12
tries) 2.15 and 2.22 accepted/s, 2 and 0 409s, POST p99 13.0 and 11.1 s, 522 and 471 ms
controller CPU per create (197 rolled-back tries for 73 creates); with these claims 6.41
and 6.42 accepted/s (2.9x), no 409, POST p99 2.0 and 2.9 s, 194 and 191 ms per create.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from ...core import addresses, ipam
from ...core.errors import BadRequest, Conflict
from ...core.text import shown
from ..db.network import IPAllocation, Network, Port, Subnet
from .common import fault

# Neutron's max_fixed_ips_per_port default.
MAX_FIXED_IPS = 5
# How long in all one transaction waits for claims in flight holding the last free
# addresses, and how long it sleeps between looks (seconds). Short: a server create
# claims its addresses while it holds its compute node's row (placement's claim) and
# storage locks, which heartbeats skip (cluster/liveness.py, 100 ms lock timeout); two
# creates each holding the address the other wants both wait this long, then 409.
BUSY_WAIT = 0.3
BUSY_NAP = (0.02, 0.16)  # the first nap, the longest
# At most this many address locks per transaction (PostgreSQL's shared lock table holds
# about max_locks_per_transaction x max_connections = 64 x 100 locks in all). Past it
# (a bulk port create) a claim still skips addresses others hold, probing their lock
# with a session lock released at once, but holds none: a racer trying an address so
# claimed waits on its row until that transaction ends (the behaviour before issue 19).
LOCK_CAP = 32
_STATE = "ipalloc"  # session.info: this transaction's locks taken and time waited
_COLUMNS = "INSERT INTO ip_allocations (port_id, subnet_id, network_id, ip_address) "
_VALUES = ("SELECT CAST(:port AS VARCHAR), CAST(:subnet AS VARCHAR), "
           "CAST(:network AS VARCHAR), CAST(:ip AS VARCHAR)")
_DO_NOTHING = " ON CONFLICT (network_id, ip_address) DO NOTHING"
_SQLITE_CLAIM = text(_COLUMNS + "VALUES (:port, :subnet, :network, :ip)" + _DO_NOTHING)
# The advisory lock's keys: the network's (hashed, keyed) and the address's low 32 bits,
# so addresses of two networks collide only with the same low bits. The statement says
# whether it took the lock (held to commit) and whether it inserted the row.
_GOT = "WITH got AS (SELECT pg_try_advisory_xact_lock(:k1, :k2) AS ok), "
_COUNT = " RETURNING 1) SELECT (SELECT ok FROM got), (SELECT count(*) FROM ins)"
_PG_AUTOMATIC = text(_GOT + "ins AS (" + _COLUMNS + _VALUES + " FROM got WHERE ok"
                     + _DO_NOTHING + _COUNT)
# A requested address is inserted whether or not it got the lock (the insert then waits
# for the claim in flight holding it).
_PG_REQUESTED = text(_GOT + "ins AS (" + _COLUMNS + _VALUES + " FROM got"
                     + _DO_NOTHING + _COUNT)
# Past LOCK_CAP: free of others' locks (a session lock taken and released at once; CASE
# keeps the order), then inserted without a lock of its own.
_PG_PROBED = text(_COLUMNS + _VALUES + " WHERE CASE WHEN pg_try_advisory_lock(:k1, :k2) "
                  "THEN pg_advisory_unlock(:k1, :k2) ELSE false END" + _DO_NOTHING)
_PG_PLAIN = text(_COLUMNS + _VALUES + _DO_NOTHING)

def requests(raw: Any) -> list[dict[str, str]] | None:
    """fixed_ips as given: a list of {subnet_id and/or ip_address} (None: defaults)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("Invalid input for fixed_ips. Reason: a list is required.")
    if len(raw) > MAX_FIXED_IPS:
        raise BadRequest("Exceeded maximum amount of fixed ips per port.")
    for item in raw:
        if not isinstance(item, dict) or not item or set(item) - {"subnet_id", "ip_address"} \
                or not all(isinstance(v, str) for v in item.values()):
            raise BadRequest(f"Invalid input for fixed_ips. Reason: {shown(item)} is not a "
                             "{subnet_id, ip_address} object.")
        if "ip_address" in item:
            addresses.ip_field(item["ip_address"], "fixed_ips")
    return raw


def assign(session: Session, network: Network, port: Port,
           wanted: list[dict[str, str]] | None, router_port: bool = False) -> None:
    """Give the port its addresses (replacing any it had that are not asked for again)."""
    if wanted is None:
        wanted = _defaults(network)
    keep = {(a.subnet_id, a.ip_address) for a in port.fixed_ips}
    chosen: list[tuple[Subnet, str | None]] = [_target(network, w) for w in wanted]
    port.fixed_ips = [a for a in port.fixed_ips
                      if any(s.id == a.subnet_id and ip == a.ip_address for s, ip in chosen)]
    session.flush()
    added = False
    for subnet, ip in chosen:
        if ip is not None and (subnet.id, ip) in keep:
            continue
        _claim(session, network, subnet, ip, router_port, port.id)
        added = True
    # The rows were inserted without the ORM: the collection is read again when used,
    # and the port is marked changed so that flush hooks (node_scope) see it whatever
    # the caller does.
    session.expire(port, ["fixed_ips"])
    if added:
        port.updated_at  # noqa: B018 - loaded, to be flagged
        flag_modified(port, "updated_at")


def _defaults(network: Network) -> list[dict[str, str]]:
    """One address from the first IPv4 subnet and one from the first IPv6 subnet."""
    out, seen = [], set()
    for subnet in network.subnets:
        if subnet.ip_version not in seen:
            seen.add(subnet.ip_version)
            out.append({"subnet_id": subnet.id})
    return out


def _target(network: Network, request: dict[str, str]) -> tuple[Subnet, str | None]:
    subnet_id, ip = request.get("subnet_id"), request.get("ip_address")
    for subnet in network.subnets:
        if subnet_id is not None and subnet.id != subnet_id:
            continue
        if ip is None or subnet_id is not None or _contains(subnet, ip):
            return subnet, ip
    if subnet_id is not None:
        raise BadRequest(f"Invalid input for operation: Failed to create port on network "
                         f"{network.id}, because fixed_ips included invalid subnet "
                         f"{shown(subnet_id)}.")
    raise BadRequest(f"Invalid input for operation: IP address {ip} is not in any subnet of "
                     f"network {network.id}.")


def _contains(subnet: Subnet, ip: str) -> bool:
    try:
        return ipam.parse_address(ip) in ipam.ipaddress.ip_network(subnet.cidr)
    except ipam.InvalidSubnet:
        raise BadRequest(f"Invalid input for fixed_ips: {shown(ip)} is not a valid IP "
                         "address.") from None


def _claim(session: Session, network: Network, subnet: Subnet, ip: str | None,
           router_port: bool, port_id: str) -> str:
    if ip is not None:
        try:
            address = str(ipam.check_fixed_ip(ipam.parse_cidr(subnet.cidr), ip,
                                              subnet.gateway_ip, router_port))
        except ipam.InvalidSubnet as err:
            raise BadRequest(f"Invalid input for operation: {err}") from None
        if not _insert(session, network, subnet, port_id, address, requested=True):
            raise fault(Conflict, "IpAddressAlreadyAllocated", f"IP address {address} "
                        f"already allocated in subnet {subnet.id}")
        return address
    pools = ipam.pools_from_api(subnet.allocation_pools)
    state, nap = _state(session), 0.0
    while True:
        used = set(session.scalars(select(IPAllocation.ip_address).where(
            IPAllocation.network_id == network.id)))
        refused = False
        for candidate in ipam.free_addresses(pools, used):
            if _insert(session, network, subnet, port_id, str(candidate)):
                return str(candidate)
            # In flight in another transaction, or committed since the read: the next.
            refused = True
        if not refused or state["waited"] + nap > BUSY_WAIT:
            raise fault(Conflict, "IpAddressGenerationFailure", f"No more IP addresses "
                        f"available on network {network.id}.")
        # Every free address was refused: read again at once (those committed since are
        # used then), then wait for the claims in flight to commit or roll back.
        time.sleep(nap)
        state["waited"] += nap
        nap = min(max(nap * 2, BUSY_NAP[0]), BUSY_NAP[1])


def _state(session: Session) -> dict[str, Any]:
    """This transaction's address locks taken and seconds waited (reset by a new one)."""
    transaction = session.get_transaction()
    state = session.info.get(_STATE)
    if state is None or state["transaction"] is not transaction:
        state = session.info[_STATE] = {"transaction": transaction, "locks": 0,
                                        "waited": 0.0}
    return state


def _keys(network_id: str, address: str) -> tuple[int, int]:
    """Two signed 32-bit advisory lock keys: the network's, the address's low bits."""
    digest = hashlib.blake2b(network_id.encode(), digest_size=4, person=b"atwill-ipa")
    low = int(ipam.parse_address(address)) & 0xFFFFFFFF
    return (int.from_bytes(digest.digest(), "big", signed=True),
            low - (1 << 32) if low >= 1 << 31 else low)

def _insert(session: Session, network: Network, subnet: Subnet, port_id: str, address: str,
            requested: bool = False) -> bool:
    """Whether the address was claimed for the port (inserted in this transaction)."""
    values = {"port": port_id, "subnet": subnet.id, "network": network.id, "ip": address}
    if session.get_bind().dialect.name != "postgresql":
        return bool(session.execute(_SQLITE_CLAIM, values).rowcount)
    values["k1"], values["k2"] = _keys(network.id, address)
    state = _state(session)
    if state["locks"] >= LOCK_CAP:
        sql = _PG_PLAIN if requested else _PG_PROBED
        return bool(session.execute(sql, values).rowcount)
    locked, inserted = session.execute(_PG_REQUESTED if requested else _PG_AUTOMATIC,
                                       values).one()
    state["locks"] += bool(locked)
    return bool(inserted)
