"""Pairing with peer clouds (a one-time peer token, the peer's CA pinned by its hash),
and the peers this cloud knows."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...agent.join import JoinError, fetch_ca
from ...config import Settings
from ...core.errors import BadRequest, Conflict, Forbidden, NotFound
from ...core.scope import PREFIXES
from ...pki import ca_hash
from ..cluster import tokens as join_tokens
from ..db.base import iso, utcnow
from ..db.peers import Peer, PeerToken
from . import seal
from .client import digest, new_secret, tls

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
SERVICES = sorted(PREFIXES)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or "") or name == "local":
        raise BadRequest(f"{name!r} is not a peer name: a letter, then letters, digits, "
                         "'.', '_' or '-' (at most 64), and not 'local'.")
    return name


def create_token(session: Session, peer_name: str, ttl: int,
                 description: str = "") -> tuple[str, PeerToken]:
    """A one-time token; the cloud that pairs with it is called peer_name here."""
    check_name(peer_name)
    if session.scalar(select(Peer.id).where(Peer.name == peer_name)) is not None:
        raise Conflict(f"A peer named {peer_name} exists already.")
    secret = "atwpt_" + new_secret()[5:]
    token = PeerToken(token_hash=join_tokens.digest(secret), peer_name=peer_name,
                      description=description, max_uses=1,
                      expires_at=utcnow() + dt.timedelta(seconds=ttl))
    session.add(token)
    session.flush()
    return secret, token


def consume_token(session: Session, secret: str) -> PeerToken:
    query = select(PeerToken).where(PeerToken.token_hash == join_tokens.digest(secret))
    token = session.scalar(query.with_for_update())
    why = join_tokens.state(token) if token is not None else "unknown"
    if why != "valid":
        raise Forbidden(f"Pairing refused: the peer token is {why}.")
    token.uses += 1
    return token


def accept(session: Session, settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """The paired side: record the cloud that presented our token, give it a credential."""
    fields = {k: body.get(k) for k in ("token", "url", "ca", "credential")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise BadRequest("Pairing needs token, url, ca and credential (strings).")
    if not fields["url"].startswith("https://"):
        raise BadRequest("A peer's URL must be https:// (its CA is pinned).")
    services = body.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise BadRequest("services must be a list of service types.")
    token = consume_token(session, fields["token"])
    if session.scalar(select(Peer.id).where(Peer.name == token.peer_name)) is not None:
        raise Conflict(f"A peer named {token.peer_name} exists already.")
    try:
        pin = ca_hash(fields["ca"].encode())
    except ValueError:
        raise BadRequest("ca is not a PEM certificate.") from None
    # The pairing cloud sends `theirs` when it calls here; here sends its `credential`.
    theirs = new_secret()
    session.add(Peer(name=token.peer_name, url=fields["url"].rstrip("/"), ca_pem=fields["ca"],
                     ca_hash=pin, credential_sealed=seal.of(settings).seal(fields["credential"]),
                     inbound_hash=digest(theirs),
                     services=services))
    return {"credential": theirs, "services": SERVICES}


def pair(session: Session, settings: Settings, name: str, url: str, pin: str,
         secret: str) -> Peer:
    """This side: pin the peer's CA, present its token, exchange credentials, record it."""
    check_name(name)
    url = url.rstrip("/")
    if session.scalar(select(Peer.id).where(Peer.name == name)) is not None:
        raise Conflict(f"A peer named {name} exists already.")
    try:
        ca_pem = fetch_ca(url, pin).decode()
    except JoinError as err:
        raise BadRequest(f"Cannot pair with {url}: {err}") from None
    mine = new_secret()
    body = {"token": secret, "url": settings.public_url, "credential": mine,
            "ca": settings.path("pki", "ca.pem").read_text(), "services": SERVICES}
    try:
        with httpx.Client(verify=tls(ca_pem), timeout=30) as http:
            resp = http.post(f"{url}/cluster/v1/peers/accept", json=body)
    except httpx.HTTPError as err:
        raise BadRequest(f"Cannot pair with {url}: {err}") from None
    if resp.status_code != 201:
        raise BadRequest(f"{url} refused the pairing (HTTP {resp.status_code}): "
                         f"{_message(resp)}")
    answer = resp.json()
    peer = Peer(name=name, url=url, ca_pem=ca_pem, ca_hash=pin.strip().lower(),
                credential_sealed=seal.of(settings).seal(answer["credential"]),
                inbound_hash=digest(mine),
                services=list(answer.get("services") or []))
    session.add(peer)
    session.flush()
    return peer


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:200]


def listing(session: Session) -> list[Peer]:
    return list(session.scalars(select(Peer).order_by(Peer.name)))


def find(session: Session, name: str) -> Peer:
    peer = session.scalar(select(Peer).where(Peer.name == name))
    if peer is None:
        raise NotFound(f"No peer cloud named {name}.")
    return peer


def by_credential(session: Session, secret: str) -> Peer | None:
    return session.scalar(select(Peer).where(Peer.inbound_hash == digest(secret)))


def to_view(peer: Peer) -> dict[str, Any]:
    return {"id": peer.id, "name": peer.name, "url": peer.url, "ca_hash": peer.ca_hash,
            "services": list(peer.services or []), "created_at": iso(peer.created_at)}


def token_view(token: PeerToken) -> dict[str, Any]:
    return {"id": token.id, "peer_name": token.peer_name, "state": join_tokens.state(token),
            "expires_at": iso(token.expires_at), "description": token.description}
