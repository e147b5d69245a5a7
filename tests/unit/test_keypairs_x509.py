"""Generated x509 keypairs: a self-signed client certificate and its private key."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atwill.core.keypairs import generate_x509, x509_fingerprint


def test_generated_certificate_belongs_to_the_key_and_names_the_user() -> None:
    made = generate_x509("0123456789abcdef0123456789abcdef")
    cert = x509.load_pem_x509_certificate(made.public_key.encode())
    key = serialization.load_pem_private_key(made.private_key.encode(), password=None)
    assert made.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "0123456789abcdef0123456789abcdef"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert made.fingerprint == x509_fingerprint(made.public_key)
    assert made.fingerprint.replace(":", "") == cert.fingerprint(hashes.SHA1()).hex()
    assert generate_x509("u").fingerprint != generate_x509("u").fingerprint
