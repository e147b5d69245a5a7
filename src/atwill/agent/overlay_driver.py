"""Turns a desired state's overlay section into the right overlay implementation's spec."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from atwill.agent.config import AgentConfig
from atwill.hostlib.overlay.base import OverlaySpec, Peer, interface_name
from atwill.hostlib.overlay.mtu import WIREGUARD_OVERHEAD, underlay_mtu
from atwill.hostlib.overlay.wireguard import WireGuard


class OverlayDriver:
    """The node's overlay: WireGuard or OpenVPN, as the controller's desired state says."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.kind: str | None = None
        self._impl: Any = None
        self._mtu: int | None = None
        self._applied: dict[str, Any] | None = None  # the section last applied in full

    def _wireguard(self) -> WireGuard:
        ifname = interface_name("awg-", str(self.config.state_dir.resolve()))
        return WireGuard(self.config.overlay_dir, ifname)

    def _openvpn(self) -> Any:
        from atwill.hostlib.overlay.openvpn import OpenVPNClient  # noqa: PLC0415 - only nodes on OpenVPN need it

        ifname = interface_name("aov-", str(self.config.state_dir.resolve()))
        return OpenVPNClient(self.config.overlay_dir, ifname)

    def _implementation(self, kind: str) -> Any:
        if self._impl is None or self.kind != kind:
            if self._impl is not None:
                self._impl.teardown()
            self._impl = self._wireguard() if kind == "wireguard" else self._openvpn()
            self.kind = kind
        return self._impl

    def mtu(self) -> int:
        if self._mtu is None:
            host = urlparse(self.config.controller_url).hostname or "127.0.0.1"
            self._mtu = underlay_mtu(host) - WIREGUARD_OVERHEAD
        return self._mtu

    def apply(self, desired: dict[str, Any], verify: bool = True) -> None:
        """Converge the overlay; without verify, an unchanged section is taken as applied.

        A new revision usually changes nothing here (a server was created): skipping
        the interface checks then saves the VM's start a few commands. The reconciler
        verifies the host against the section every few seconds.
        """
        section = desired["overlay"]
        kind = section["kind"]
        if kind == "none":
            return
        if not verify and section == self._applied and self.kind == kind:
            return
        self._applied = None
        impl = self._implementation(kind)
        if kind == "wireguard":
            impl.apply(self.wireguard_spec(section, impl.ifname))
        else:
            impl.apply(self.openvpn_spec(section, impl.ifname))
        self._applied = section

    def wireguard_spec(self, section: dict[str, Any], ifname: str) -> OverlaySpec:
        peers = [Peer(name=p["name"], public_key=p["public_key"], overlay_ip=p["overlay_ip"],
                      endpoint=p["endpoint"], keepalive=p.get("keepalive", 25))
                 for p in section["peers"] if p.get("public_key")]
        return OverlaySpec(kind="wireguard", ifname=ifname, address=section["address"],
                           prefix=section["prefix"], listen_port=section["port"],
                           mtu=self.mtu(), peers=peers,
                           private_key_path=self.config.overlay_dir / "wg-private.key")

    def openvpn_spec(self, section: dict[str, Any], _ifname: str) -> Any:
        from atwill.hostlib.overlay.openvpn import ClientSpec  # noqa: PLC0415

        server = section["openvpn"]
        return ClientSpec(remote=f"{server['remote']}:{server['port']}", proto=server["proto"],
                          ca=self.config.ca, cert=self.config.cert, key=self.config.key,
                          mtu=self.mtu())

    def credentials_changed(self) -> None:
        """The node certificate was renewed: OpenVPN reads it only when it starts, so stop
        its client now; the next converge (at most a few seconds) starts it with the new one.
        WireGuard does not use the certificate."""
        if self.kind == "openvpn" and self._impl is not None:
            self._impl.process.stop()
            self._applied = None

    def status(self) -> dict[str, Any]:
        if self._impl is None:
            return {}
        try:
            return self._impl.status()
        except Exception as err:  # noqa: BLE001 - status is best effort, reported as such
            return {"error": str(err)}

    def teardown(self) -> None:
        for impl in filter(None, (self._impl,)):
            impl.teardown()
        if self._impl is None:
            # Not started in this process: tear down whatever a previous agent left.
            self._wireguard().teardown()
            try:
                self._openvpn().teardown()
            except ImportError:
                pass
        self._impl = None
