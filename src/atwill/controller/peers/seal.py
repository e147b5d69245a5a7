"""Secrets a peer cloud is called with (its credential, a caller's token for a node's image
fetch), sealed so that a copy of the database alone does not yield them (review finding).

The key is derived from the cluster CA's private key, which the controller keeps in its
state directory and never in the database: every controller that serves the cloud (and
signs its nodes' certificates) has it, and nothing new has to be copied between them.

Each purpose has a key of its own (HKDF info): the Fernet token keys (controller/keys.py)
are sealed under TOKEN_KEYS, so a database writer who copies a sealed token key into a
peer's credential column gets a secret the peer code cannot open (it would otherwise be
sent, in the clear, to whatever URL that writer set for the peer).
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...core.scope import PeerUnavailable

INFO = b"atwill peer secrets v1"  # peers' secrets (the label since the first release)
TOKEN_KEYS = b"atwill token keys v1"
_cache: dict[tuple[Path, bytes], Fernet] = {}
_lock = threading.Lock()


def derive(ca_key_pem: bytes, info: bytes = INFO) -> Fernet:
    """A Fernet key of its own from the CA's private key (HKDF: the CA key is not reused
    as is, and knowing the sealing key says nothing about the CA key)."""
    key = serialization.load_pem_private_key(ca_key_pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the cluster CA key is not an EC key")
    size = (key.curve.key_size + 7) // 8
    secret = key.private_numbers().private_value.to_bytes(size, "big")
    raw = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(secret)
    return Fernet(base64.urlsafe_b64encode(raw))


class Sealer:
    """Seal and unseal with the key of one state directory's CA (read once), for one
    purpose (info: the peers' secrets unless told)."""

    def __init__(self, pki: Path, info: bytes = INFO) -> None:
        self.path, self.info = pki / "ca-key.pem", info

    def fernet(self) -> Fernet:
        with _lock:
            found = _cache.get((self.path, self.info))
            if found is None:
                found = _cache[self.path, self.info] = derive(self.path.read_bytes(),
                                                              self.info)
            return found

    def seal(self, secret: str) -> str:
        return self.fernet().encrypt(secret.encode()).decode()

    def unseal(self, sealed: str | None, peer_name: str) -> str:
        """The secret; a 503 naming the peer when there is none or it cannot be opened."""
        if not sealed:
            raise PeerUnavailable(
                f"The peer cloud {peer_name} was paired before its credential was sealed "
                "(migration 0023 dropped it): pair again ('atwill peer remove' on both "
                "sides, then 'atwill peer token create' and 'atwill peer add').")
        try:
            return self.fernet().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise PeerUnavailable(
                f"The secret for the peer cloud {peer_name} was sealed with another CA "
                "key than this controller's: pair again.") from None


def of(settings: object, info: bytes = INFO) -> Sealer:
    return Sealer(settings.path("pki"), info)  # type: ignore[attr-defined]
