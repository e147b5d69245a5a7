"""The cluster CA and the certificates it signs (controller TLS now, node mTLS later)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(directory: Path, name: str = "atwill cluster CA") -> bool:
    """Make ca.pem and ca-key.pem in directory; False when they exist already."""
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return False
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
    return cert, key  # type: ignore[return-value]


def ca_hash(ca_pem: bytes) -> str:
    """The pin a joining node checks: sha256 of the CA certificate's DER bytes."""
    der = x509.load_pem_x509_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def issue_server_cert(directory: Path, hosts: list[str], name: str = "controller") -> bool:
    """Sign a TLS server certificate for hosts; reissued when the host list changes."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    wanted = sorted(set(hosts))
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = sorted({str(v) for v in san.get_values_for_type(x509.DNSName)}
                      | {str(v) for v in san.get_values_for_type(x509.IPAddress)})
        if have == wanted:
            return False
    ca_cert, ca_key = load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in wanted:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def make_key_and_csr(name: str) -> tuple[bytes, bytes]:
    """A node's private key (PEM, stays on the node) and its certificate request."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


# Node certificates are short-lived: the agent renews its own at half its life over mTLS
# (POST /cluster/v1/nodes/{id}/certificate), so a stolen or forgotten one soon expires.
NODE_CERT_DAYS = 14


def sign_client_csr(directory: Path, csr_pem: bytes, name: str,
                    days: int = NODE_CERT_DAYS) -> tuple[bytes, str]:
    """Sign a node's CSR as a client certificate for name; returns (PEM, serial hex)."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature is not valid")
    ca_cert, ca_key = load_ca(directory)
    serial = x509.random_serial_number()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Also a server's: a storage node serves NBD exports with it, and GnuTLS (QEMU's
        # TLS) matches the name a client expects only against a SAN or a server's CN.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                              ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), format(serial, "x")


def serial_of(cert_der: bytes) -> str:
    return format(x509.load_der_x509_certificate(cert_der).serial_number, "x")


def public_key_der(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """The subject public key (DER), to check a renewal keeps the node's key."""
    return cert_or_csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_csr(key_pem: bytes, name: str) -> bytes:
    """A certificate request for name from an existing private key (renewal)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the node key is not an EC key")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def write_crl(directory: Path, serials: list[str], path: Path) -> bool:
    """Write the CA's revocation list of serials (hex) to path; True when it changed."""
    wanted = sorted(set(serials))
    stamp = path.with_name(path.name + ".serials")
    if path.exists() and stamp.exists() and stamp.read_text() == "\n".join(wanted):
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(crl_pem(directory, wanted))
    tmp.replace(path)
    stamp.write_text("\n".join(wanted))
    return True


def crl_pem(directory: Path, serials: list[str]) -> bytes:
    """The CA's revocation list (PEM) of serials (hex)."""
    ca_cert, ca_key = load_ca(directory)
    wanted = sorted(set(serials))
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - dt.timedelta(minutes=5))
               .next_update(now + dt.timedelta(days=3650)))
    for serial in wanted:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
            .revocation_date(now).build())
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def crl_serials(pem: bytes) -> frozenset[str]:
    """The serials (hex) a PEM revocation list holds (ValueError if it is none): two lists
    signed at different times differ in their bytes, not in what they revoke."""
    return frozenset(format(r.serial_number, "x") for r in x509.load_pem_x509_crl(pem))


def cert_lifetime(cert_pem: bytes) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) of a certificate, in UTC."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc
