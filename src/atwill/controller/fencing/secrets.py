"""The key that encrypts fence devices' secrets at rest: STATE_DIR/fence.key, mode 0600.

A database dump alone then never reveals a BMC password; whoever runs a fence
agent needs the controller's state directory too. Replicas share the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "fence.key"


def _key(state_dir: Path, create: bool) -> bytes | None:
    path = state_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            return None
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def encrypt(state_dir: Path, secrets: dict[str, str]) -> str | None:
    """A Fernet token of the secrets' JSON (None when there are none)."""
    if not secrets:
        return None
    key = _key(state_dir, create=True)
    assert key is not None
    return Fernet(key).encrypt(json.dumps(secrets).encode()).decode()


def decrypt(state_dir: Path, token: str | None) -> dict[str, str]:
    """The secrets back; RuntimeError (never their text) when the key is missing or wrong."""
    if not token:
        return {}
    key = _key(state_dir, create=False)
    if key is None:
        raise RuntimeError(f"the fence secrets key {state_dir / KEY_FILE} is missing")
    try:
        return json.loads(Fernet(key).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise RuntimeError(f"the fence secrets key {state_dir / KEY_FILE} does not decrypt "
                           "this device's secrets") from None
