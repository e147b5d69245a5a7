"""OpenVPN server and clients in namespaces, over UDP and TCP, with atwill's CA certificates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atwill import pki
from atwill.hostlib.overlay.openvpn import ClientSpec, ServerSpec
from atwill.hostlib.run import run
from tests.host.conftest import Host

pytestmark = pytest.mark.host
MODULE = "atwill.hostlib.overlay.openvpn"
PORT = 1194


def issue_client_cert(ca_dir: Path, name: str, out: Path) -> tuple[Path, Path]:
    """A node certificate as the controller will sign it: EC P-256, CN=name, clientAuth."""
    ca_cert, ca_key = pki.load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / "node.pem", out / "node-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_server_and_clients(hosts: Callable[[int], list[Host]], tmp_path: Path,
                            proto: str) -> None:
    ctl, n1, n2 = hosts(3)
    ca_dir = tmp_path / "ca"
    pki.create_ca(ca_dir)
    pki.issue_server_cert(ca_dir, [ctl.address])
    ca = ca_dir / "ca.pem"
    server_dir = tmp_path / "ctl"
    dev = "awt-ovpn0"  # tun names are per namespace, and these namespaces are the test's own.
    clients = {"node1": "10.251.0.11", "node2": "10.251.0.12"}
    server = ServerSpec(listen_port=PORT, proto=proto, address="10.251.0.1",  # type: ignore[arg-type]
                        prefix=24, ca=ca, cert=ca_dir / "controller.pem",
                        key=ca_dir / "controller-key.pem", clients=clients)
    ctl.call(MODULE, "OpenVPNServer", server_dir, dev, "apply", server)

    nodes = [(n1, "node1"), (n2, "node2")]
    for host, name in nodes:
        cert, key = issue_client_cert(ca_dir, name, tmp_path / name)
        spec = ClientSpec(remote=f"{ctl.address}:{PORT}", proto=proto,  # type: ignore[arg-type]
                          ca=ca, cert=cert, key=key)
        host.call(MODULE, "OpenVPNClient", tmp_path / name, dev, "apply", spec)

    # Static addresses per node name, and node-to-node traffic through the server.
    assert n1.ping("10.251.0.1", within=10) and n2.ping("10.251.0.1", within=10)
    assert n1.ping("10.251.0.12", within=2) and ctl.ping("10.251.0.11")
    status = n1.call(MODULE, "OpenVPNClient", tmp_path / "node1", dev, "status")
    assert status["connected"] and status["address"] == "10.251.0.11/24"
    server_status = ctl.call(MODULE, "OpenVPNServer", server_dir, dev, "status")
    assert server_status["pid"] and server_status["address"] == "10.251.0.1/24"

    # Re-applying the same spec keeps the running server.
    again = ctl.call(MODULE, "OpenVPNServer", server_dir, dev, "apply", server)
    assert again["pid"] == server_status["pid"]

    # A node dropped from the server's list is disconnected and cannot come back.
    del clients["node2"]
    ctl.call(MODULE, "OpenVPNServer", server_dir, dev, "apply", server)
    assert not n1.ping("10.251.0.12")
    assert n1.ping("10.251.0.1", within=5)

    for host, directory, cls in ((ctl, server_dir, "OpenVPNServer"),
                                 (n1, tmp_path / "node1", "OpenVPNClient"),
                                 (n2, tmp_path / "node2", "OpenVPNClient")):
        host.call(MODULE, cls, directory, dev, "teardown")
        host.call(MODULE, cls, directory, dev, "teardown")
        assert not host.has_link(dev)
        assert not any(p.name.startswith(dev) for p in directory.iterdir())
        assert run(["ip", "netns", "pids", host.name]).stdout.split() == []
