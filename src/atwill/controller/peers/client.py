"""Calls to a peer cloud: TLS pinned to the peer's CA, its credential, a short timeout."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import ssl

import httpx

from ...core.scope import PeerUnavailable
from ..db.peers import Peer
from .seal import Sealer

CREDENTIAL_HEADER = "X-Atwill-Peer"


@dataclasses.dataclass(frozen=True)
class PeerRef:
    """A peer's row, detached, its credential unsealed, for use outside a session."""

    id: str
    name: str
    url: str
    ca_pem: str
    credential: str = dataclasses.field(repr=False)
    services: tuple[str, ...]

    @classmethod
    def of(cls, peer: Peer, sealer: Sealer) -> PeerRef:
        return cls(peer.id, peer.name, peer.url, peer.ca_pem,
                   sealer.unseal(peer.credential_sealed, peer.name),
                   tuple(peer.services or ()))


def new_secret() -> str:
    return "atwp_" + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def tls(ca_pem: str) -> ssl.SSLContext:
    """Trust exactly the peer's CA (pinned at pairing), nothing from the system store."""
    return ssl.create_default_context(cadata=ca_pem)


def sync_client(peer: PeerRef, timeout: float) -> httpx.Client:
    return httpx.Client(base_url=peer.url, verify=tls(peer.ca_pem), timeout=timeout,
                        headers={CREDENTIAL_HEADER: peer.credential})


def async_client(peer: PeerRef, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=peer.url, verify=tls(peer.ca_pem), timeout=timeout,
                             headers={CREDENTIAL_HEADER: peer.credential})


def unreachable(peer_name: str, timeout: float, err: Exception) -> PeerUnavailable:
    why = "did not answer in time" if isinstance(err, httpx.TimeoutException) else (
        f"could not be reached ({type(err).__name__})")
    return PeerUnavailable(f"The peer cloud {peer_name} {why} (timeout {timeout:g} s); "
                           "requests served by this cloud alone are not affected.")
