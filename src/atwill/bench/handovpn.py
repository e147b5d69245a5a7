"""OpenVPN made by hand in a lab with atwill's topology: a server, two clients, client-to-client.

The server runs in the controller's namespace on its own port and subnet, the
clients in two node namespaces, with certificates from a CA made here with
atwill.pki; the data path (UDP, AES-256-GCM, tun, MTU) is what atwill configures,
so node-to-node traffic takes the same way: client, server, client.
Everything it makes is undone on exit, whatever happened.
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from pathlib import Path

from .. import pki
from ..lab import processes
from ..lab.netns import Namespace

PORT = 11940
MTU = 1420  # atwill's: the lab's 1500-byte underlay less WIREGUARD_OVERHEAD.
READY_TIMEOUT = 30.0
READY = "Initialization Sequence Completed"
COMMON = ["dev-type tun", "proto udp", "topology subnet", "dh none", "tls-version-min 1.2",
          "data-ciphers AES-256-GCM:AES-128-GCM", "verb 3"]


def _client_cert(directory: Path, name: str) -> tuple[Path, Path]:
    key_pem, csr = pki.make_key_and_csr(name)
    cert_pem, _serial = pki.sign_client_csr(directory, csr, name)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    return cert, key


def _server_config(directory: Path, dev: str, subnet: str, mtu: int) -> str:
    return "\n".join([
        "mode server", "tls-server", f"dev {dev}", f"port {PORT}",
        f"ifconfig {subnet}.1 255.255.255.0", f"ifconfig-pool {subnet}.10 {subnet}.100",
        'push "topology subnet"', f'push "route-gateway {subnet}.1"', "client-to-client",
        f"ca {directory / 'ca.pem'}", f"cert {directory / 'server.pem'}",
        f"key {directory / 'server-key.pem'}",
        'remote-cert-eku "TLS Web Client Authentication"', "keepalive 5 30",
        f"tun-mtu {mtu}", *COMMON]) + "\n"


def _client_config(directory: Path, dev: str, name: str, server_ip: str, mtu: int) -> str:
    return "\n".join([
        "client", f"dev {dev}", f"remote {server_ip} {PORT}", "nobind",
        f"ca {directory / 'ca.pem'}", f"cert {directory / name}.pem",
        f"key {directory / name}-key.pem",
        'remote-cert-eku "TLS Web Server Authentication"', f"tun-mtu {mtu}",
        *COMMON]) + "\n"


def _start(ns: Namespace, config: Path, text: str, stack: ExitStack) -> tuple[str, Path]:
    """Start openvpn on `text` in `ns`; stopped by PID (which removes its tun) on exit."""
    config.write_text(text)
    config.chmod(0o600)
    log = config.with_suffix(".log")
    proc = processes.spawn(ns, ["openvpn", "--config", str(config)], log)
    dev = config.stem
    stack.callback(_remove, ns, dev, proc)
    return dev, log


def _remove(ns: Namespace, dev: str, proc: processes.Process) -> None:
    processes.stop(proc, timeout=5)
    if ns.exists():
        ns.ip("link", "del", "dev", dev, check=False)


def _wait_ready(ns: Namespace, dev: str, log: Path) -> str:
    """Wait for the tunnel to be up; return the address it was given."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if log.exists() and READY in log.read_text(errors="replace"):
            fields = ns.ip("-4", "-o", "addr", "show", "dev", dev, check=False).stdout.split()
            if len(fields) > 3:
                return fields[3].split("/")[0]
        time.sleep(0.05)
    raise RuntimeError(f"openvpn {dev} in {ns.name} did not come up: "
                       f"{log.read_text(errors='replace')[-800:] if log.exists() else ''}")


def tunnel(stack: ExitStack, workdir: Path, server: tuple[Namespace, str],
           clients: list[tuple[Namespace, str]], mtu: int = MTU) -> list[str]:
    """Server at (namespace, WAN address), one client per (namespace, name); their addresses."""
    directory = workdir / "ovpn-pki"
    directory.mkdir(mode=0o700)
    pki.create_ca(directory, "atwill bench hand-made OpenVPN CA")
    pki.issue_server_cert(directory, [server[1]], name="server")
    subnet = f"10.250.{secrets.randbelow(254) + 1}"
    server_ns, server_ip = server
    dev = f"bov-{secrets.token_hex(4)}"
    dev, log = _start(server_ns, workdir / f"{dev}.conf",
                      _server_config(directory, dev, subnet, mtu), stack)
    _wait_ready(server_ns, dev, log)
    started = []
    for ns, name in clients:
        _client_cert(directory, name)
        dev = f"bov-{secrets.token_hex(4)}"
        started.append((ns, *_start(ns, workdir / f"{dev}.conf",
                                    _client_config(directory, dev, name, server_ip, mtu),
                                    stack)))
    return [_wait_ready(ns, dev, log) for ns, dev, log in started]
