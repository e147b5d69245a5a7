"""The controller's own overlay endpoint, converged whenever the cluster revision moves."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.overlay import prefix_length
from ...core.overlay_peers import node_peers
from ..context import Controller
from ..db.models import Node, RevokedCertificate
from ..revision import revision
from .nodecert import superseded

log = logging.getLogger("atwill.overlay")
CRL_FILE = "crl.pem"


def revoked_serials(session: Session) -> list[str]:
    """Every revoked node certificate but those a renewal of a present node superseded.

    A superseded certificate is of the same key as its node's current one, so refusing
    it gains nothing, and the node's OpenVPN client keeps its tunnel until it restarts.
    """
    present = {n.name: n for n in session.scalars(select(Node))}
    return [row.serial for row in session.scalars(select(RevokedCertificate))
            if not (row.node_name in present
                    and superseded(session, row, present[row.node_name]))]


def write_crl(pki: Path, serials: list[str]) -> None:
    """OpenVPN's crl-verify file, rewritten when the revoked serials change."""
    from ...pki import write_crl as write

    if write(pki, serials, pki / CRL_FILE):
        log.info("certificate revocation list now holds %d serial(s)", len(serials))


class OverlayRunner:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.kind = ctl.settings.overlay
        self.impl: Any = None

    def _make(self) -> Any:
        from atwill.hostlib.overlay.base import interface_name

        settings = self.ctl.settings
        directory = settings.path("overlay")
        seed = str(settings.state_dir.resolve())
        if self.kind == "wireguard":
            from atwill.hostlib.overlay.wireguard import WireGuard

            return WireGuard(directory, interface_name("awg-", seed))
        from atwill.hostlib.overlay.openvpn import OpenVPNServer

        return OpenVPNServer(directory, interface_name("aov-", seed))

    def _snapshot(self) -> tuple[int, list[Node]]:
        with self.ctl.db.session() as session:
            found = list(session.scalars(select(Node).where(Node.overlay_ip.is_not(None))))
            if self.kind == "openvpn":
                write_crl(self.ctl.settings.path("pki"), revoked_serials(session))
            return revision(session), found

    def _spec(self, members: list[Node]) -> Any:
        settings = self.ctl.settings
        from atwill.hostlib.overlay.mtu import WIREGUARD_OVERHEAD, underlay_mtu

        host = settings.public_host or settings.listen_host
        mtu = underlay_mtu(host) - WIREGUARD_OVERHEAD
        if self.kind == "openvpn":
            from atwill.hostlib.overlay.openvpn import ServerSpec

            pki = settings.path("pki")
            return ServerSpec(listen_port=settings.overlay_port, proto=settings.openvpn_proto,
                              address=settings.overlay_ip,
                              prefix=prefix_length(settings.overlay_cidr),
                              ca=pki / "ca.pem", cert=pki / "controller.pem",
                              key=pki / "controller-key.pem", mtu=mtu, crl=pki / CRL_FILE,
                              clients={n.name: n.overlay_ip for n in members})
        from atwill.hostlib.overlay.base import OverlaySpec, Peer

        from .controller_peer import KEY_FILE, public_key

        # A node never in a controller's place: not with this controller's key, not at a
        # controller's address (core/overlay_peers.node_peers).
        own = [{"public_key": public_key(settings.state_dir), "overlay_ip": settings.overlay_ip}]
        nodes = node_peers([{"name": n.name, "public_key": n.wireguard_public_key,
                             "overlay_ip": n.overlay_ip,
                             "endpoint": f"{n.endpoint_host}:{n.overlay_port}"
                             if n.endpoint_host else None}
                            for n in members if n.wireguard_public_key],
                           own, settings.overlay_cidr)
        peers = [Peer(name=n["name"], public_key=n["public_key"], overlay_ip=n["overlay_ip"],
                      endpoint=n["endpoint"]) for n in nodes]
        return OverlaySpec(kind="wireguard", ifname=self.impl.ifname,
                           address=settings.overlay_ip,
                           prefix=prefix_length(settings.overlay_cidr),
                           listen_port=settings.overlay_port, mtu=mtu, peers=peers,
                           private_key_path=settings.state_dir.joinpath(*KEY_FILE))

    def converge(self, last: int | None) -> int:
        revision, members = self._snapshot()
        if revision != last:
            self.impl.apply(self._spec(members))
            log.info("controller overlay at revision %d with %d peers", revision, len(members))
        return revision

    async def run(self) -> None:
        if os.geteuid() != 0:
            log.warning("not root: the controller's %s overlay endpoint is not started",
                        self.kind)
            return
        if self.kind == "wireguard":
            from .controller_peer import ensure_key

            # A controller added from a bundle makes its own key (bundles carry none).
            if await asyncio.to_thread(ensure_key, self.ctl.settings.state_dir):
                log.info("made this controller's WireGuard key")
        self.impl = self._make()
        last: int | None = None
        while True:
            try:
                last = await asyncio.to_thread(self.converge, last)
            except Exception:  # noqa: BLE001 - retried every second
                log.exception("could not converge the controller overlay")
            await asyncio.sleep(1.0)
