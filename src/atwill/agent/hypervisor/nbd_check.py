"""The agent checks an NBD export's server certificate before QEMU connects to it.

QEMU's NBD client (tls-creds-x509, endpoint=client) checks the storage node's certificate
against the cluster CA and the name it expects, but loads no revocation list (QEMU reads
ca-crl.pem for a server endpoint only; checked against QEMU 7.2's crypto/tlscredsx509.c).
A removed storage node keeps a certificate the CA signed for its name, and a new node may
take that name and overlay address: so before each connection QEMU is asked to make (a
hot-plug, a start with volumes), the agent negotiates NBD up to STARTTLS itself and
verifies the certificate with the CA, the controller's list of removed nodes'
certificates (ca-crl.pem in the client credentials) and the expected name. Residual
gap: QEMU's own reconnects (reconnect-delay) are not checked again.
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
from pathlib import Path

NBD_MAGIC = b"NBDMAGIC"
OPT_MAGIC = b"IHAVEOPT"
REPLY_MAGIC = 0x3E889045565A9
OPT_STARTTLS = 5
REP_ACK = 1
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2


class CheckFailed(RuntimeError):
    """The export cannot be reached, or its server is not the storage node expected."""


def context(creds: Path, hostname: str | None) -> ssl.SSLContext:
    """A client context: the cluster CA, the revocation list when there is one, the node's
    own certificate (the export asks for a client certificate before it finishes)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = hostname is not None
    ctx.load_verify_locations(cafile=str(creds / "ca-cert.pem"))
    crl = creds / "ca-crl.pem"
    if crl.exists():
        ctx.load_verify_locations(cafile=str(crl))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.load_cert_chain(str(creds / "client-cert.pem"), str(creds / "client-key.pem"))
    return ctx


def check(host: str, port: int, hostname: str | None, creds: Path,
          timeout: float = 5.0) -> None:
    """CheckFailed unless host:port speaks NBD and its TLS certificate is acceptable."""
    try:
        ctx = context(creds, hostname)
        with socket.create_connection((host, port), timeout) as sock:
            _starttls(sock)
            with ctx.wrap_socket(sock, server_hostname=hostname or host):
                pass
    except ssl.SSLCertVerificationError as err:
        raise CheckFailed(f"cannot connect to {host}:{port}: the storage node's "
                          f"certificate is refused: {err.verify_message}") from None
    except (OSError, ValueError) as err:
        raise CheckFailed(f"cannot reach {host}:{port}: {err}") from None


def _starttls(sock: socket.socket) -> None:
    """Fixed newstyle negotiation up to the server's acknowledgement of NBD_OPT_STARTTLS."""
    hello = _read(sock, 18)
    if hello[:16] != NBD_MAGIC + OPT_MAGIC:
        raise ValueError("not an NBD server")
    (flags,) = struct.unpack(">H", hello[16:])
    sock.sendall(struct.pack(">I", flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)))
    sock.sendall(OPT_MAGIC + struct.pack(">II", OPT_STARTTLS, 0))
    magic, option, reply, length = struct.unpack(">QIII", _read(sock, 20))
    _read(sock, length)
    if magic != REPLY_MAGIC or option != OPT_STARTTLS or reply != REP_ACK:
        raise ValueError(f"the NBD server refused STARTTLS (reply {reply:#x})")


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("the NBD server closed the connection")
        data += chunk
    return data


def main(argv: list[str]) -> int:
    """host port hostname|- creds-dir: run where QEMU runs (a network namespace)."""
    host, port, hostname, creds = argv
    try:
        check(host, int(port), None if hostname == "-" else hostname, Path(creds))
    except CheckFailed as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
