import datetime as dt
from pathlib import Path

import pytest
from cryptography.fernet import InvalidToken

from atwill.controller.keys import KeyRepository
from atwill.core.passwords import hash_password, verify_password
from atwill.core.tokens import TokenPayload, format_time, new_audit_id


def _payload(**extra) -> TokenPayload:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    return TokenPayload(user_id="u" * 32, methods=("password",), issued_at=now,
                        expires_at=now + dt.timedelta(hours=1), audit_id=new_audit_id(),
                        **extra)


def test_payload_round_trip() -> None:
    for payload in (_payload(), _payload(project_id="p" * 32), _payload(domain_id="default")):
        assert TokenPayload.unpack(payload.pack()) == payload
    assert _payload(project_id="p").scope == "project"
    assert _payload().scope == "unscoped"


def test_time_format_is_keystones() -> None:
    assert format_time(dt.datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006Z"


def test_rotation_keeps_recent_keys(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "keys", max_active=3)
    assert repo.create() and not repo.create()
    token = repo.fernet().encrypt(b"hello")
    assert repo.rotate() == 2
    assert repo.fernet().decrypt(token) == b"hello"
    assert repo.rotate() == 3
    with pytest.raises(InvalidToken):
        repo.fernet().decrypt(token)
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["0", "2", "3"]


def test_staged_key_decrypts_before_promotion(tmp_path: Path) -> None:
    """Another replica may already encrypt with the key this one still has staged."""
    repo = KeyRepository(tmp_path / "keys")
    repo.create()
    from cryptography.fernet import Fernet

    staged = Fernet((tmp_path / "keys" / "0").read_bytes())
    assert repo.fernet().decrypt(staged.encrypt(b"x")) == b"x"


def test_rotate_without_keys_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="atwill init"):
        KeyRepository(tmp_path / "none").rotate()


def test_passwords() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "s3cret")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "x")
