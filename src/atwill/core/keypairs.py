"""SSH and x509 keypairs: validate imported keys, fingerprint them, generate new ones."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SSH_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521")
KEY_TYPES = ("ssh", "x509")
_NAME = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
# 2.92 widened the allowed names to include '@' (keys named after user@host).
_NAME_2_92 = re.compile(r"^(?! )[a-zA-Z0-9@. _-]+(?<! )$")
MAX_PUBLIC_KEY = 16384
# Microsoft's User Principal Name: WinRM maps a client certificate to a user through it,
# which is what Nova's generated x509 keypairs are for.
_UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
X509_DAYS = 3650


class InvalidKey(ValueError):
    """The key or name is not acceptable; the message says why."""


@dataclasses.dataclass(frozen=True)
class Generated:
    private_key: str
    public_key: str
    fingerprint: str


def check_name(name: object, allow_at: bool = False) -> str:
    pattern = _NAME_2_92 if allow_at else _NAME
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not pattern.match(name):
        allowed = "letters, digits, '.', '_', '-', ' '" + (", '@'" if allow_at else "")
        raise InvalidKey("Keypair name must be 1 to 255 characters of " + allowed +
                         ", without leading or trailing spaces.")
    return name


def md5_colon(data: bytes) -> str:
    """Nova's fingerprint form: MD5 as colon-separated lowercase hex pairs."""
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """Validate an OpenSSH public key line and return its MD5 fingerprint."""
    if not isinstance(public_key, str) or not public_key.strip():
        raise InvalidKey("Keypair data is invalid: the public key is empty.")
    if len(public_key) > MAX_PUBLIC_KEY:
        raise InvalidKey("Keypair data is invalid: the public key is too long.")
    words = public_key.strip().split()
    if len(words) < 2 or words[0] not in SSH_TYPES:
        raise InvalidKey("Keypair data is invalid: the public key must start with one of "
                         + ", ".join(SSH_TYPES) + ".")
    try:
        blob = base64.b64decode(words[1], validate=True)
        serialization.load_ssh_public_key(" ".join(words[:2]).encode())
    except (binascii.Error, ValueError, TypeError) as err:
        raise InvalidKey(f"Keypair data is invalid: failed to parse the public key "
                         f"({err}).") from None
    except Exception as err:  # cryptography raises UnsupportedAlgorithm for odd curves
        raise InvalidKey(f"Keypair data is invalid: {err}.") from None
    return md5_colon(blob)


def x509_fingerprint(certificate: str) -> str:
    """Validate a PEM certificate and return Nova's SHA1 colon-hex fingerprint."""
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
    except (ValueError, TypeError, AttributeError) as err:
        raise InvalidKey(f"Keypair data is invalid: not a PEM x509 certificate ({err}).") from None
    # Nova fingerprints certificates with SHA1; this names them, it does not secure them.
    digest = cert.fingerprint(hashes.SHA1()).hex()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fingerprint(key_type: str, public_key: str) -> str:
    if key_type == "x509":
        return x509_fingerprint(public_key)
    return ssh_fingerprint(public_key)


def generate(comment: str = "Generated-by-atwill", algorithm: str = "ed25519") -> Generated:
    """A fresh key pair; the private key is returned once and never stored."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    public = f"{public} {comment}"
    return Generated(private, public, ssh_fingerprint(public))


def _upn_value(name: str) -> bytes:
    """DER of a UTF8String, the form a UPN otherName carries."""
    data = name.encode()
    if len(data) < 128:
        return bytes([0x0C, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + data


def generate_x509(user_id: str) -> Generated:
    """Nova's generated x509 keypair: a self-signed RSA client certificate for the user
    (CN and UPN name them); the certificate is the public key, the PKCS#8 key is returned
    once, and the fingerprint is the certificate's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    upn = x509.OtherName(_UPN, _upn_value(f"{user_id}@localhost"))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=X509_DAYS))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([upn]), critical=False)
            .sign(key, hashes.SHA256()))
    public = cert.public_bytes(serialization.Encoding.PEM).decode()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return Generated(private, public, x509_fingerprint(public))
