"""WireGuard overlay: the kernel module where it exists, else wireguard-go run as our child."""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from atwill.hostlib.overlay import udp_buffers
from atwill.hostlib.overlay.base import OverlaySpec
from atwill.hostlib.run import ChildProcess, HostCommandError, Reverter, run

KERNEL = "kernel"
USERSPACE = "wireguard-go"
# wireguard-go's control sockets; one directory for every network namespace of the host.
SOCKET_DIR = Path("/var/run/wireguard")
_RAW = serialization.Encoding.Raw


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) X25519 key pair, base64 as `wg genkey` and `wg pubkey` print."""
    raw = bytearray(X25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
    # Clamp as `wg genkey` does; the public key is the same either way, the text is not.
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    private = base64.b64encode(bytes(raw)).decode()
    return private, public_key_of(private)


def public_key_of(private_b64: str) -> str:
    """The base64 public key of a base64 private key, as `wg pubkey` computes it."""
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64.strip()))
    return base64.b64encode(key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
                            ).decode()


class WireGuard:
    """One WireGuard interface of this host; its pidfile and log live in directory."""

    def __init__(self, directory: Path, ifname: str) -> None:
        self.directory = directory
        self.ifname = ifname
        self.process = ChildProcess(directory / f"{ifname}.pid", ifname)
        self.logfile = directory / f"{ifname}.log"
        self._names: dict[str, str] = {}

    def apply(self, spec: OverlaySpec) -> None:
        """Converge the interface on spec; changes nothing when it already matches."""
        if spec.ifname != self.ifname:
            raise ValueError(f"spec is for {spec.ifname}, this overlay is {self.ifname}")
        with Reverter() as revert:
            if self.implementation() is None:
                self._create(revert)
            self._sync_peers(spec)
            self._sync_address(spec)
            run(["ip", "link", "set", "dev", self.ifname, "mtu", str(spec.mtu), "up"])
        pid = self.process.pid()
        if pid is not None:  # wireguard-go: its UDP buffers are too small (udp_buffers.py)
            udp_buffers.ensure(pid, ifname=self.ifname)
        self._names = {peer.public_key: peer.name for peer in spec.peers}

    def teardown(self) -> None:
        """Stop wireguard-go, delete the interface, and remove the socket, pidfile and log."""
        self.process.stop()
        if _link_kind(self.ifname) is not None:
            run(["ip", "link", "del", "dev", self.ifname])
        # A killed wireguard-go leaves its socket; the name is ours, so the file is too.
        (SOCKET_DIR / f"{self.ifname}.sock").unlink(missing_ok=True)
        self.logfile.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """Implementation, interface, listen port, and each peer's endpoint and handshake."""
        implementation = self.implementation()
        result: dict[str, Any] = {"implementation": implementation, "interface": self.ifname,
                                  "pid": self.process.pid(), "peers": []}
        if implementation is None:
            return result
        head, peers = _dump(self.ifname)
        result.update(public_key=head[1], listen_port=int(head[2]), peers=peers)
        for peer in peers:
            peer["name"] = self._names.get(peer["public_key"])
        return result

    def implementation(self) -> str | None:
        """"kernel" or "wireguard-go" when our interface exists, else None."""
        kind = _link_kind(self.ifname)
        if kind is None:
            return None
        if kind == "wireguard":
            return KERNEL
        if self.process.pid() is not None:
            return USERSPACE
        raise HostCommandError(["ip", "link", "show", self.ifname], 1,
                               f"{self.ifname} exists as {kind} but is not our WireGuard")

    def _create(self, revert: Reverter) -> None:
        added = run(["ip", "link", "add", self.ifname, "type", "wireguard"], check=False)
        if added.returncode == 0:
            revert.add(lambda: run(["ip", "link", "del", "dev", self.ifname], check=False))
            return
        # No kernel module: wireguard-go makes a tun device and serves `wg` on a unix socket.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.process.stop()
        # The variable marks a foreground run, which skips the banner urging the kernel module.
        self.process.start(["wireguard-go", "-f", self.ifname], self.logfile,
                           env={"WG_PROCESS_FOREGROUND": "1"})
        revert.add(lambda: self.logfile.unlink(missing_ok=True))
        revert.add(self.process.stop)
        self._wait_for_socket()

    def _wait_for_socket(self, timeout: float = 5.0) -> None:
        sock = SOCKET_DIR / f"{self.ifname}.sock"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.pid() is None:
                break
            if sock.exists() and _link_kind(self.ifname) is not None:
                return
            time.sleep(0.02)
        tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
        raise HostCommandError(["wireguard-go", "-f", self.ifname], 1,
                               f"did not come up within {timeout} s: {tail}")

    def _sync_peers(self, spec: OverlaySpec) -> None:
        private = spec.private_key_path.read_text().strip()
        if _in_sync(spec, private, self.ifname):
            # Setting the listen port makes wireguard-go rebind, so skip a no-op sync.
            return
        # syncconf adds, updates and removes peers without disturbing unchanged sessions.
        run(["wg", "syncconf", self.ifname, "/dev/stdin"], input=_render(spec, private))

    def _sync_address(self, spec: OverlaySpec) -> None:
        wanted = ipaddress.ip_interface(f"{spec.address}/{spec.prefix}")
        shown = json.loads(run(["ip", "-j", "addr", "show", "dev", self.ifname]).stdout)
        for info in shown[0].get("addr_info", []) if shown else []:
            have = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            if have != wanted and not have.ip.is_link_local:
                run(["ip", "addr", "del", str(have), "dev", self.ifname])
        run(["ip", "addr", "replace", str(wanted), "dev", self.ifname])


def _link_kind(ifname: str) -> str | None:
    shown = run(["ip", "-d", "-j", "link", "show", "dev", ifname], check=False)
    if shown.returncode != 0:
        return None
    kind: str = json.loads(shown.stdout)[0].get("linkinfo", {}).get("info_kind", "")
    return kind


def _render(spec: OverlaySpec, private: str) -> str:
    lines = ["[Interface]", f"PrivateKey = {private}", f"ListenPort = {spec.listen_port}"]
    for peer in spec.peers:
        lines += ["", "[Peer]", f"PublicKey = {peer.public_key}",
                  f"AllowedIPs = {_host_route(peer.overlay_ip)}",
                  f"PersistentKeepalive = {peer.keepalive}"]
        if peer.endpoint:
            lines.append(f"Endpoint = {peer.endpoint}")
    return "\n".join(lines) + "\n"


def _host_route(ip: str) -> str:
    return str(ipaddress.ip_network(ip))  # /32 for IPv4, /128 for IPv6


def _dump(ifname: str) -> tuple[list[str], list[dict[str, Any]]]:
    lines = run(["wg", "show", ifname, "dump"]).stdout.splitlines()
    peers = []
    for line in lines[1:]:
        key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peers.append({
            "public_key": key, "endpoint": None if endpoint == "(none)" else endpoint,
            "allowed_ips": [] if allowed == "(none)" else allowed.split(","),
            "latest_handshake": int(handshake), "rx_bytes": int(rx), "tx_bytes": int(tx),
            "keepalive": 0 if keepalive == "off" else int(keepalive)})
    return lines[0].split("\t"), peers


def _in_sync(spec: OverlaySpec, private: str, ifname: str) -> bool:
    head, peers = _dump(ifname)
    # A peer without a configured endpoint keeps whatever endpoint it roamed to.
    wanted = {p.public_key: (p.endpoint, [_host_route(p.overlay_ip)], p.keepalive)
              for p in spec.peers}
    roaming = {p.public_key for p in spec.peers if p.endpoint is None}
    have = {p["public_key"]: (None if p["public_key"] in roaming else p["endpoint"],
                              p["allowed_ips"], p["keepalive"]) for p in peers}
    return (head[0], int(head[2]), have) == (private, spec.listen_port, wanted)
