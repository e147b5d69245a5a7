"""argon2id password hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id floor (19 MiB, 2 passes): strong, and a login stays well under 100 ms.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

# A hash of nothing in particular, verified when the user does not exist so that
# unknown and known names take the same time.
_DUMMY = _hasher.hash("atwill-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
