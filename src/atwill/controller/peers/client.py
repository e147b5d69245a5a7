"""Calls to a peer cloud: TLS pinned to the peer's CA, its credential, a short timeout."""

from __future__ import annotations

import hashlib
import secrets
import ssl

import httpx

from ...core.scope import PeerUnavailable
from ..db.peers import Peer

CREDENTIAL_HEADER = "X-Atwill-Peer"


def new_secret() -> str:
    return "atwp_" + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def tls(ca_pem: str) -> ssl.SSLContext:
    """Trust exactly the peer's CA (pinned at pairing), nothing from the system store."""
    return ssl.create_default_context(cadata=ca_pem)


def sync_client(peer: Peer, timeout: float) -> httpx.Client:
    return httpx.Client(base_url=peer.url, verify=tls(peer.ca_pem), timeout=timeout,
                        headers={CREDENTIAL_HEADER: peer.credential})


def async_client(peer: Peer, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=peer.url, verify=tls(peer.ca_pem), timeout=timeout,
                             headers={CREDENTIAL_HEADER: peer.credential})


def unreachable(peer_name: str, timeout: float, err: Exception) -> PeerUnavailable:
    why = "did not answer in time" if isinstance(err, httpx.TimeoutException) else (
        f"could not be reached ({type(err).__name__})")
    return PeerUnavailable(f"The peer cloud {peer_name} {why} (timeout {timeout:g} s); "
                           "requests served by this cloud alone are not affected.")
