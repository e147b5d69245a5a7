"""OpenVPN overlay for networks that block UDP: the controller serves, nodes are clients."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atwill.hostlib.run import ChildProcess, HostCommandError, run

Proto = Literal["udp", "tcp"]
CIPHERS = "AES-256-GCM:AES-128-GCM"
SERVER_AUTH = "TLS Web Server Authentication"
CLIENT_AUTH = "TLS Web Client Authentication"
# A client-config-dir file is named after the certificate's CN, so names must be plain.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class ServerSpec:
    """The controller's OpenVPN server: one static overlay address per node name."""

    listen_port: int
    proto: Proto
    address: str
    prefix: int
    ca: Path
    cert: Path
    key: Path
    clients: dict[str, str] = field(default_factory=dict)
    crl: Path | None = None
    mtu: int = 1500


@dataclass(frozen=True)
class ClientSpec:
    """A node's connection to the controller's server; remote is "host:port"."""

    remote: str
    proto: Proto
    ca: Path
    cert: Path
    key: Path
    mtu: int = 1500


class _Process:
    """openvpn run in the foreground as our child, with its config, pidfile and log in directory."""

    def __init__(self, directory: Path, dev: str) -> None:
        self.directory = directory
        self.dev = dev
        self.config = directory / f"{dev}.conf"
        self.logfile = directory / f"{dev}.log"
        self.statusfile = directory / f"{dev}.status"
        self.process = ChildProcess(directory / f"{dev}.pid", str(self.config))

    @property
    def ifname(self) -> str:
        """The tun device's name (the same attribute WireGuard has)."""
        return self.dev

    def _converge(self, text: str) -> bool:
        """Write the config and (re)start openvpn when it changed or is not running."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.config.exists() and self.config.read_text() == text and self.process.pid():
            return False
        self.process.stop()
        self.config.write_text(text)
        self.config.chmod(0o600)
        self.process.start(["openvpn", "--config", str(self.config)], self.logfile)
        return True

    def _remove_files(self) -> None:
        self.process.stop()
        for path in (self.config, self.logfile, self.statusfile):
            path.unlink(missing_ok=True)

    def _base_status(self, implementation: str) -> dict[str, Any]:
        return {"implementation": implementation, "interface": self.dev,
                "pid": self.process.pid(), "address": _address(self.dev)}

    def _log_tail(self) -> str:
        return self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""


class OpenVPNServer(_Process):
    """The controller side: a tun device dev serving every node, client-to-client."""

    @property
    def ccd(self) -> Path:
        return self.directory / f"{self.dev}.ccd"

    @property
    def management(self) -> Path:
        return self.directory / f"{self.dev}.mgmt"

    def apply(self, spec: ServerSpec) -> None:
        """Converge: config, one ifconfig-push file per node, and a running server."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        moved = self._sync_ccd(spec)
        if self._converge(self._render(spec)):
            self._wait_for_device()
        else:
            # Client files are read at connect time, so a removed or moved node is disconnected.
            for name in moved:
                self._kill_client(name)

    def teardown(self) -> None:
        """Stop the server and remove its config, client files, status and log."""
        self._remove_files()
        self.management.unlink(missing_ok=True)  # Left behind only if openvpn was killed.
        shutil.rmtree(self.ccd, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        """The server's interface and the nodes connected to it."""
        result = self._base_status("openvpn-server")
        clients = []
        text = self.statusfile.read_text() if self.statusfile.exists() else ""
        for line in text.splitlines():
            cols = line.split(",")
            if cols[0] == "CLIENT_LIST" and len(cols) > 3:
                clients.append({"name": cols[1], "endpoint": cols[2], "overlay_ip": cols[3]})
        result["clients"] = clients
        return result

    def _sync_ccd(self, spec: ServerSpec) -> list[str]:
        """Make the client files exactly spec.clients; return names removed or changed."""
        self.ccd.mkdir(exist_ok=True, mode=0o700)
        mask = ipaddress.ip_network(f"0.0.0.0/{spec.prefix}").netmask
        moved = []
        for path in self.ccd.iterdir():
            if path.name not in spec.clients:
                path.unlink()
                moved.append(path.name)
        for name, address in spec.clients.items():
            if not NAME.match(name):
                raise ValueError(f"node name {name!r} cannot name a client-config file")
            text = f"ifconfig-push {address} {mask}\n"
            path = self.ccd / name
            if path.exists() and path.read_text() != text:
                moved.append(name)
            path.write_text(text)
        return moved

    def _render(self, spec: ServerSpec) -> str:
        mask = ipaddress.ip_network(f"0.0.0.0/{spec.prefix}").netmask
        lines = [
            "# Written by atwill on every apply.",
            "mode server", "tls-server", "dev-type tun", f"dev {self.dev}",
            f"proto {'udp' if spec.proto == 'udp' else 'tcp-server'}",
            f"port {spec.listen_port}", "topology subnet",
            f"ifconfig {spec.address} {mask}",
            'push "topology subnet"', f'push "route-gateway {spec.address}"',
            # Only nodes with a client file may connect, each at its own static address.
            f"client-config-dir {self.ccd}", "ccd-exclusive", "client-to-client",
            *_tls(spec.ca, spec.cert, spec.key, CLIENT_AUTH),
            f"tun-mtu {spec.mtu}", "keepalive 5 30",
            f"management {self.management} unix",
            f"status {self.statusfile} 1", "status-version 2", "verb 3",
        ]
        if spec.crl:
            lines.append(f"crl-verify {spec.crl}")
        return "\n".join(lines) + "\n"

    def _wait_for_device(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.pid():
            if "Initialization Sequence Completed" in self._log_tail():
                return
            time.sleep(0.05)
        raise HostCommandError(["openvpn", "--config", str(self.config)], 1,
                               f"server did not start: {self._log_tail()}")

    def _kill_client(self, name: str) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(self.management))
                sock.sendall(f"kill {name}\nquit\n".encode())
                while sock.recv(4096):
                    pass
        except OSError:
            pass  # Not connected or no server: nothing to disconnect.


class OpenVPNClient(_Process):
    """A node's tun device dev, connected to the controller's server (and so to every node)."""

    def apply(self, spec: ClientSpec) -> None:
        """Converge: config and a running client; the connection itself comes asynchronously."""
        self._converge(self._render(spec))

    def teardown(self) -> None:
        """Stop the client and remove its config, status and log."""
        self._remove_files()

    def status(self) -> dict[str, Any]:
        """The interface, its pushed address, and whether the tunnel is up."""
        result = self._base_status("openvpn")
        result["connected"] = result["address"] is not None
        return result

    def _render(self, spec: ClientSpec) -> str:
        host, _, port = spec.remote.rpartition(":")
        lines = [
            "# Written by atwill on every apply.",
            "client", "dev-type tun", f"dev {self.dev}",
            f"proto {'udp' if spec.proto == 'udp' else 'tcp-client'}",
            f"remote {host.strip('[]')} {port}", "nobind",
            *_tls(spec.ca, spec.cert, spec.key, SERVER_AUTH),
            # Retry fast: the agent, not openvpn's backoff, decides when to give up.
            "connect-retry 1 5", "resolv-retry infinite",
            f"tun-mtu {spec.mtu}", f"status {self.statusfile} 1", "verb 3",
        ]
        return "\n".join(lines) + "\n"


def _tls(ca: Path, cert: Path, key: Path, peer_usage: str) -> list[str]:
    # EC certificates from atwill's CA with ECDHE: no DH parameters, no static tls-crypt key.
    # The peer must carry the other role's extended key usage, so a node cannot pose as the
    # controller. remote-cert-tls would also demand a key-usage extension, which atwill's
    # certificates do not have.
    return [f"ca {ca}", f"cert {cert}", f"key {key}", "dh none", "tls-version-min 1.2",
            f"data-ciphers {CIPHERS}", f'remote-cert-eku "{peer_usage}"']


def _address(dev: str) -> str | None:
    shown = run(["ip", "-4", "-o", "addr", "show", "dev", dev], check=False)
    fields = shown.stdout.split()  # "5: DEV inet ADDR/PREFIX ..."
    return fields[3] if len(fields) > 3 else None
