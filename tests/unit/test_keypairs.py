"""Keypair validation, fingerprints and generation (core/keypairs.py)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from atwill.core import keypairs


def openssh(key) -> str:  # noqa: ANN001
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def expected_md5(line: str) -> str:
    digest = hashlib.md5(base64.b64decode(line.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ed25519.Ed25519PrivateKey.generate,
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()),
])
def test_fingerprint_of_supported_types(make) -> None:  # noqa: ANN001
    line = openssh(make()) + " someone@host"
    fingerprint = keypairs.ssh_fingerprint(line)
    assert fingerprint == expected_md5(line)
    assert len(fingerprint.split(":")) == 16


def test_known_fingerprint() -> None:
    # As printed by `ssh-keygen -l -E md5` for this key.
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPp8z8ceHsLUnLX15vB4B7NC4RPGYtj9pwXlISfeVtdR x"
    assert keypairs.ssh_fingerprint(line) == "b3:1a:30:9c:e3:e2:74:53:df:5b:9e:a0:f0:1f:29:99"


@pytest.mark.parametrize("garbage", [
    "", "   ", "not a key", "ssh-rsa", "ssh-rsa !!!notbase64", "ssh-dss AAAAB3NzaC1kc3M=",
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPp8z8ceHsLUnLX15vB4B7NC4RPGYtj9pwXlISfeVtdR",
    "ssh-ed25519 AAAA", "ssh-rsa " + "A" * 20000,
])
def test_garbage_is_rejected(garbage: str) -> None:
    with pytest.raises(keypairs.InvalidKey):
        keypairs.ssh_fingerprint(garbage)


def test_generate_returns_matching_pair() -> None:
    pair = keypairs.generate(comment="c")
    private = serialization.load_ssh_private_key(pair.private_key.encode(), password=None)
    assert openssh(private) == pair.public_key.rsplit(" ", 1)[0]
    assert pair.fingerprint == expected_md5(pair.public_key)


def test_generate_rsa() -> None:
    assert keypairs.generate(algorithm="rsa").public_key.startswith("ssh-rsa ")


@pytest.mark.parametrize(("name", "ok", "at"), [
    ("k1", True, False), ("my key.v2_-", True, False), (" lead", False, False),
    ("trail ", False, False), ("", False, False), ("x" * 256, False, False),
    ("a/b", False, False), ("me@host", False, False), ("me@host", True, True), (5, False, True),
])
def test_names(name: object, ok: bool, at: bool) -> None:
    if ok:
        assert keypairs.check_name(name, allow_at=at) == name
    else:
        with pytest.raises(keypairs.InvalidKey):
            keypairs.check_name(name, allow_at=at)


def test_x509_garbage() -> None:
    with pytest.raises(keypairs.InvalidKey):
        keypairs.fingerprint("x509", "-----BEGIN CERTIFICATE-----\nnope\n")
