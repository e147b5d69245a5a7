"""The token cache: bounded in time and size, dropped at every identity commit."""

import datetime as dt

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from atwill.controller.db.base import Base
from atwill.controller.db.models import Flavor, Revocation
from atwill.controller.identity import token_cache
from atwill.core.policy import Credentials

CREDS = Credentials(user_id="u", roles=frozenset({"member"}), project_id="p")


def _later(seconds: float = 3600) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=seconds)


def _put(cache: token_cache.TokenCache, token: str, expires: dt.datetime | None = None) -> None:
    cache.put(token, CREDS, expires or _later(), token_cache.generation())


def test_hit_then_ttl_then_token_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = token_cache.TokenCache(ttl=30)
    _put(cache, "t1")
    assert cache.get("t1") == CREDS
    assert cache.get("other") is None
    _put(cache, "t2", expires=_later(-1))
    assert cache.get("t2") is None  # the token itself expired
    clock = [1000.0]
    monkeypatch.setattr(token_cache.time, "monotonic", lambda: clock[0])
    _put(cache, "t3")
    clock[0] += 31
    assert cache.get("t3") is None


def test_size_is_bounded_least_recently_used_first() -> None:
    cache = token_cache.TokenCache(size=2)
    _put(cache, "a")
    _put(cache, "b")
    cache.get("a")
    _put(cache, "c")
    assert cache.get("b") is None and cache.get("a") and cache.get("c")


def test_a_validation_read_before_an_identity_change_is_not_kept() -> None:
    cache = token_cache.TokenCache()
    before = token_cache.generation()
    token_cache.identity_changed()
    cache.put("t", CREDS, _later(), before)
    assert cache.get("t") is None


def test_an_identity_commit_clears_other_commits_do_not() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    cache = token_cache.TokenCache()
    try:
        _put(cache, "t")
        with Session(engine) as session:
            session.add(Flavor(flavorid="f1", name="tiny", vcpus=1, ram=64))
            session.commit()
        assert cache.get("t") is not None
        with Session(engine) as session:
            session.add(Revocation(audit_id="x", issued_before=_later(0), expires_at=_later()))
            session.rollback()
        assert cache.get("t") is not None
        with Session(engine) as session:
            session.add(Revocation(audit_id="x", issued_before=_later(0), expires_at=_later()))
            session.commit()
        assert cache.get("t") is None
    finally:
        engine.dispose()


def test_a_change_of_the_token_keys_drops_everything() -> None:
    cache = token_cache.TokenCache()
    cache.follow((1, 2))
    _put(cache, "t")
    cache.follow((1, 2))
    assert cache.get("t") == CREDS
    cache.follow((2, 3))
    assert cache.get("t") is None


def test_a_validation_read_before_another_workers_change_is_not_kept(tmp_path) -> None:
    """Review finding: a request that began validating before another worker's revocation
    stored its stale answer once a second request had consumed the stamp's change."""
    from atwill.controller.worker_stamp import WorkerStamp

    cache = token_cache.TokenCache()
    cache.share(tmp_path / "identity.stamp")
    cache.follow("keys")
    before = token_cache.generation()  # the slow request starts validating here
    WorkerStamp(tmp_path / "identity.stamp").touch()  # another worker revokes
    cache.follow("keys")  # a second request here sees the change first
    cache.put("t", CREDS, _later(), before)  # the slow one ends
    assert cache.get("t") is None
    _put(cache, "t")  # a validation begun after the change is kept
    assert cache.get("t") == CREDS
