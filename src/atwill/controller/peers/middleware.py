"""X-Scope on the wire: a request whose service is scoped to a peer is answered by that
peer (through this cloud, with the caller's token); a token a peer issued is checked with
that peer and acts here under its mapped identity; the rest goes on locally untouched."""

from __future__ import annotations

import anyio
from sqlalchemy import select
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ...core import scope as xscope
from ...core.errors import ApiError, BadRequest, Forbidden, Unauthorized
from ..context import Controller
from ..db.peers import Peer
from ..identity.tokens import TokenService
from . import images, proxy, registry, seal, trust
from .client import CREDENTIAL_HEADER, PeerRef


class ScopeMiddleware:
    def __init__(self, app: ASGIApp, ctl: Controller) -> None:
        self.app, self.ctl = app, ctl
        self.sealer = seal.of(ctl.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = xscope.service_of(scope["path"]) if scope["type"] == "http" else None
        headers = Headers(scope=scope) if service else None
        if headers is None or (xscope.HEADER not in headers
                               and CREDENTIAL_HEADER.lower() not in headers):
            await self.app(scope, receive, send)
            return
        try:
            target = await self._prepare(scope, service, headers)
        except ApiError as err:
            await proxy.reject(send, scope["path"], err)
            return
        if target is None:
            token = images.PEER_IMAGE.set(scope["state"].pop("peer_image", None))
            try:
                await self.app(scope, receive, send)
            finally:
                images.PEER_IMAGE.reset(token)
            return
        peer, own_token = target
        await proxy.forward(scope, receive, send, peer, self.ctl.settings.peer_timeout,
                            own_token, self.ctl.base_url)

    async def _prepare(self, scope: Scope, service: str,
                       headers: Headers) -> tuple[PeerRef, bool] | None:
        """The peer to forward to (and whether the token is its own), or None: local."""
        wanted = xscope.parse(headers.get(xscope.HEADER))
        credential = headers.get(CREDENTIAL_HEADER)
        if credential is not None and wanted:
            raise BadRequest("A request relayed by a peer cloud carries no X-Scope.")
        peers, issuer = await anyio.to_thread.run_sync(self._load, set(wanted.values()),
                                                       credential)
        xscope.check_offered(wanted, {p.name: p.services for p in peers.values()})
        if credential is not None and issuer is None:
            raise Unauthorized("The peer credential is not known to this cloud.")
        issuer = issuer or peers.get(wanted.get("identity", ""))
        target = peers.get(wanted.get(service, ""))
        token = headers.get("x-auth-token")
        if target is not None:
            if issuer is not None and issuer.name != target.name:
                raise BadRequest(f"A token of the peer cloud {issuer.name} cannot be carried "
                                 f"on to {target.name}.")
            if issuer is None:
                await anyio.to_thread.run_sync(self._refuse_privileged, token, target.name)
            return target, issuer is not None
        state = scope.setdefault("state", {})
        if issuer is not None and token:
            state["peer_credentials"] = await anyio.to_thread.run_sync(
                self._credentials, issuer, token)
        creating = scope["method"] == "POST" and scope["path"].endswith("/servers")
        if service == "compute" and creating and "network" in wanted:
            raise BadRequest("A server here cannot use a network of a peer cloud "
                             f"({wanted['network']}): tenant networks do not cross clouds.")
        # A server, or a volume, made here from a peer's image (metadata at create, the
        # node's download streamed from the peer).
        if service in ("compute", "volume") and "image" in wanted and token:
            await anyio.to_thread.run_sync(self._refuse_privileged, token, wanted["image"])
            state["peer_image"] = (peers[wanted["image"]], token,
                                   self.ctl.settings.peer_timeout, self.sealer)
        return None

    def _refuse_privileged(self, token: str | None, peer: str) -> None:
        """A cloud admin's or a system-scoped token is never handed to a peer cloud: the
        peer could replay it here with all its power (review finding). Members' tokens
        are, as OpenStackoid's; what a peer may do with them is what they may do."""
        if not token:
            return
        self.ctl.tokens.follow(self.ctl.keys.stamp())  # another worker's role change
        credentials = self.ctl.tokens.get(token)
        if credentials is None:
            try:
                with self.ctl.db.session() as session:
                    credentials = TokenService(self.ctl).validate(session, token).credentials
            except ApiError:
                return  # an invalid token: the peer (or the handler here) answers 401
        if credentials.is_admin or credentials.system:
            raise Forbidden(f"A cloud administrator's or system-scoped token is not sent to "
                            f"the peer cloud {peer}: act there with a member's token.")

    def _load(self, names: set[str], credential: str | None
              ) -> tuple[dict[str, PeerRef], PeerRef | None]:
        with self.ctl.db.session() as session:
            found = session.scalars(select(Peer).where(Peer.name.in_(names))) if names else []
            peers = {p.name: PeerRef.of(p, self.sealer) for p in found}
            issuer = registry.by_credential(session, credential) if credential else None
            return peers, PeerRef.of(issuer, self.sealer) if issuer else None

    def _credentials(self, peer: PeerRef, token: str) -> object:
        who = trust.ask_issuer(self.ctl, peer, token)
        with self.ctl.db.session() as session:
            return trust.credentials_for(session, peer.id, peer.name, who)
