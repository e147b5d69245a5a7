"""The agent's check of an NBD export's certificate (agent/hypervisor/nbd_check.py) against a
small NBD server in a thread: NBD negotiation up to STARTTLS, then TLS with a node
certificate of a CA made here; a certificate in the revocation list is refused."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill import pki
from atwill.agent.hypervisor import nbd_check, volumes
from atwill.core.volume_devices import Volume

NAME = "storage-one"


def serve_once(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"NBDMAGICIHAVEOPT" + struct.pack(">H", 3))
        conn.recv(4)
        conn.recv(16)
        conn.sendall(struct.pack(">QIII", nbd_check.REPLY_MAGIC, nbd_check.OPT_STARTTLS,
                                 nbd_check.REP_ACK, 0))
        try:
            with ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refused us


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """(CA directory, the compute node's client credentials, the storage cert's serial)."""
    ca = tmp_path / "ca"
    pki.create_ca(ca)
    made = {}
    for name in (NAME, "compute-one"):
        key, csr = pki.make_key_and_csr(name)
        cert, serial = pki.sign_client_csr(ca, csr, name)
        (tmp_path / f"{name}.pem").write_bytes(cert)
        (tmp_path / f"{name}-key.pem").write_bytes(key)
        made[name] = serial
    creds = volumes.client_creds(tmp_path / "nbd-client", ca / "ca.pem",
                                 tmp_path / "compute-one.pem", tmp_path / "compute-one-key.pem")
    yield ca, creds, made[NAME]
    shutil.rmtree(tmp_path / "nbd-client", ignore_errors=True)


def export(tmp: Path) -> tuple[socket.socket, threading.Thread]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp / f"{NAME}.pem"), str(tmp / f"{NAME}-key.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=serve_once, args=(listener, ctx))
    thread.start()
    return listener, thread


def check_once(tmp: Path, creds: Path) -> None:
    listener, thread = export(tmp)
    try:
        volume = Volume.from_desired({"volume_id": "1" * 32, "host": "127.0.0.1",
                                      "port": listener.getsockname()[1],
                                      "tls_hostname": NAME})
        volumes.checker(creds)(volume)
    finally:
        thread.join(10)
        listener.close()


def test_a_storage_node_of_the_cluster_passes(tmp_path: Path, cluster) -> None:
    check_once(tmp_path, cluster[1])


def test_a_removed_storage_node_is_refused(tmp_path: Path, cluster) -> None:
    ca, creds, serial = cluster
    creds = volumes.client_creds(creds, ca / "ca.pem", tmp_path / "compute-one.pem",
                                 tmp_path / "compute-one-key.pem", pki.crl_pem(ca, [serial]))
    assert (creds / "ca-crl.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(volumes.VolumeError, match="certificate is refused: certificate revoked"):
        check_once(tmp_path, creds)
    # Another node's removal changes nothing for this one.
    volumes.client_creds(creds, ca / "ca.pem", tmp_path / "compute-one.pem",
                         tmp_path / "compute-one-key.pem", pki.crl_pem(ca, ["1234abcd"]))
    check_once(tmp_path, creds)


def test_a_server_that_is_not_nbd_is_refused(tmp_path: Path, cluster) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def hello() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=hello)
    thread.start()
    try:
        with pytest.raises(nbd_check.CheckFailed, match="not an NBD server"):
            nbd_check.check("127.0.0.1", listener.getsockname()[1], NAME, cluster[1])
    finally:
        thread.join(10)
        listener.close()
