"""The Fernet keys in the database (controller/keys.py): imported from the state
directory's files at the first start, sealed at rest, rotated for every controller."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, inspect, select, update
from sqlalchemy.exc import OperationalError

from atwill import pki
from atwill.controller.db.session import Database, alembic_config
from atwill.controller.db.token_keys import TokenKey
from atwill.controller.keys import KeyRepository
from atwill.controller.peers.seal import TOKEN_KEYS, Sealer
from atwill.core.scope import PeerUnavailable
from tests.conftest import fresh_database_url
from tests.unit import migrated_copies

RECHECK = 0.2

# Each test's `db` is a copy of one database migrated to head per module (it was a new one
# that each test migrated: ~1 s a test on PostgreSQL); the test of the upgrade itself
# starts from an empty one.
template, db = migrated_copies.fixtures()


@pytest.fixture
def empty(engine: str, tmp_path: Path) -> Iterator[Database]:
    """A new database with no schema (the unit tier's own `db` fixture)."""
    for url in fresh_database_url(engine):
        database = Database(url or f"sqlite:///{tmp_path / 'store.db'}")
        try:
            yield database
        finally:
            database.dispose()


def _state(root: Path, ca_from: Path | None = None) -> Path:
    """A controller's state directory with the cluster CA (the first one's, if given)."""
    root.mkdir()
    if ca_from is None:
        pki.create_ca(root / "pki")
    else:
        shutil.copytree(ca_from / "pki", root / "pki")
    return root


def _repo(state: Path, db: Database, recheck: float = RECHECK) -> KeyRepository:
    return KeyRepository(state / "fernet-keys", 3, db=db,
                         sealer=Sealer(state / "pki", TOKEN_KEYS), recheck=recheck)


def _sealed(db: Database) -> dict[int, str]:
    with db.session() as session:
        return {k.number: k.sealed for k in session.scalars(select(TokenKey))}


def test_files_before_the_migration_then_imported_sealed(empty: Database,
                                                          tmp_path: Path) -> None:
    db = empty
    state = _state(tmp_path / "a")
    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    command.upgrade(cfg, "0028")
    repo = _repo(state, db)
    assert repo.create()
    before = repo.fernet().encrypt(b"issued before the upgrade")
    files = {n: (state / "fernet-keys" / str(n)).read_bytes().strip().decode()
             for n in (0, 1)}
    assert not repo.shared()
    command.upgrade(cfg, "head")
    db.engine.dispose()
    repo.prepare()
    assert repo.shared()
    sealed = _sealed(db)
    assert sorted(sealed) == [0, 1]
    for number, value in sealed.items():  # sealed: the key itself is not in the row
        assert files[number] not in value
    assert not (state / "fernet-keys").exists()  # renamed once imported
    assert (state / "fernet-keys.imported" / "0").read_text().strip() == files[0]
    assert repo.fernet().decrypt(before) == b"issued before the upgrade"
    # A second start imports nothing more; a new process reads the table.
    repo.prepare()
    assert _sealed(db) == sealed
    assert _repo(state, db).fernet().decrypt(before) == b"issued before the upgrade"
    db.engine.dispose()
    command.downgrade(cfg, "0028")
    assert not inspect(db.engine).has_table("token_keys")


def test_rotation_on_one_controller_reaches_the_other(db: Database, tmp_path: Path) -> None:
    a_state = _state(tmp_path / "a")
    b_state = _state(tmp_path / "b", ca_from=a_state)
    a, b = _repo(a_state, db), _repo(b_state, db)
    a.create()
    a.prepare()
    b.prepare()  # no files of its own: the table's keys
    old = a.fernet().encrypt(b"old")
    stamp = b.stamp()
    assert a.rotate() == 2
    # a encrypts with the key b still holds as staged: valid on b at once.
    after = a.fernet().encrypt(b"after")
    assert b.fernet().decrypt(after) == b"after"
    time.sleep(RECHECK * 1.5)
    assert b.stamp() != stamp
    assert a.fernet().decrypt(b.fernet().encrypt(b"from b")) == b"from b"
    assert b.rotate() == 3  # on either one
    assert sorted(_sealed(db)) == [0, 2, 3]
    time.sleep(RECHECK * 1.5)
    for repo in (a, b):
        with pytest.raises(InvalidToken):
            repo.fernet().decrypt(old)
        assert repo.fernet().decrypt(after) == b"after"
    assert not (b_state / "fernet-keys").exists()  # nothing written to b's files


def test_a_rotation_here_is_seen_at_once(db: Database, tmp_path: Path) -> None:
    """The CLI rotates in its own process; this state directory's workers see it at their
    next call, not after RECHECK."""
    state = _state(tmp_path / "a")
    serving, cli = _repo(state, db, recheck=60), _repo(state, db, recheck=60)
    serving.create()
    serving.prepare()
    stamp = serving.stamp()
    cli.rotate()
    assert serving.stamp() != stamp


def test_concurrent_first_starts_import_once(db: Database, tmp_path: Path) -> None:
    first = _state(tmp_path / "a")
    repos = [_repo(first, db)]
    for name in ("b", "c", "d"):  # bundle copies: the same files, the same CA
        state = _state(tmp_path / name, ca_from=first)
        repos.append(_repo(state, db))
    repos[0].create()
    for repo in repos[1:]:
        shutil.copytree(first / "fernet-keys", repo.directory)
    errors: list[BaseException] = []

    def start(repo: KeyRepository) -> None:
        try:
            repo.prepare()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(r,)) for r in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(_sealed(db)) == [0, 1]
    token = repos[0].fernet().encrypt(b"x")
    assert all(r.fernet().decrypt(token) == b"x" for r in repos)


def test_another_ca_key_is_refused_clearly(db: Database, tmp_path: Path) -> None:
    a = _repo(_state(tmp_path / "a"), db)
    a.create()
    a.prepare()
    stranger = _repo(_state(tmp_path / "b"), db)
    with pytest.raises(RuntimeError, match="another cluster CA key"):
        stranger.prepare()


def test_an_unreadable_database_keeps_the_keys_loaded(db: Database, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    repo = _repo(_state(tmp_path / "a"), db, recheck=0)
    repo.create()
    repo.prepare()
    token = repo.fernet().encrypt(b"x")

    def down() -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(repo, "_rows", down)
    assert repo.fernet().decrypt(token) == b"x"
    assert "cannot read the token keys" in caplog.text


def test_rotate_imports_first_when_the_table_is_empty(db: Database, tmp_path: Path) -> None:
    """`atwill keys rotate` run after the upgrade, before any controller started."""
    repo = _repo(_state(tmp_path / "a"), db)
    repo.create()
    before = KeyRepository(repo.directory).fernet().encrypt(b"x")
    assert repo.rotate() == 2
    assert sorted(_sealed(db)) == [0, 1, 2]
    assert repo.fernet().decrypt(before) == b"x"


def _stranger(db: Database, tmp_path: Path) -> KeyRepository:
    """A controller of the same database whose state directory has another CA key."""
    return _repo(_state(tmp_path / "stranger"), db)


def test_a_rotation_with_another_ca_key_writes_nothing(db: Database, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """Review finding: `atwill keys rotate` with another pki/ca-key.pem copied row 0 and
    sealed a new staged key with its own CA key; every controller then failed (500)."""
    good = _repo(_state(tmp_path / "a"), db, recheck=0)
    good.create()
    good.prepare()
    token = good.fernet().encrypt(b"x")
    before = _sealed(db)
    with pytest.raises(RuntimeError, match="token key 0 .* another cluster CA key"):
        _stranger(db, tmp_path).rotate()
    assert _sealed(db) == before
    assert good.fernet().decrypt(token) == b"x"
    assert "cannot read the token keys" not in caplog.text


@pytest.mark.parametrize("damage", ["another CA key", "not a Fernet key", "not sealed"])
def test_a_bad_row_keeps_the_keys_loaded_and_refuses_a_start(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        damage: str) -> None:
    """Review finding: a row that cannot be opened made every request a 500 (RuntimeError
    or ValueError out of fernet()): the keys loaded stay, logged once; a start refuses."""
    state = _state(tmp_path / "a")
    good = _repo(state, db, recheck=0)
    good.create()
    good.prepare()
    token = good.fernet().encrypt(b"x")
    if damage == "another CA key":
        sealed = _stranger(db, tmp_path).sealer.seal(Fernet.generate_key().decode())  # type: ignore[union-attr]
    elif damage == "not a Fernet key":
        sealed = good.sealer.seal("not a key")  # type: ignore[union-attr]
    else:
        sealed = "garbage"
    with db.session() as session:
        session.execute(update(TokenKey).where(TokenKey.number == 0).values(sealed=sealed))
    for _ in range(3):
        assert good.fernet().decrypt(token) == b"x"
    assert caplog.text.count("cannot read the token keys") == 1
    with pytest.raises(RuntimeError, match="token key 0"):
        _repo(state, db).prepare()
    with pytest.raises(RuntimeError, match="token key 0"):
        _repo(state, db).rotate()
    with db.session() as session:
        assert session.get(TokenKey, 0).sealed == sealed  # type: ignore[union-attr]


def test_a_token_key_copied_into_a_peer_credential_does_not_open(db: Database,
                                                                 tmp_path: Path) -> None:
    """Review finding: token keys and peer secrets shared one sealing key, so a database
    writer could copy token_keys.sealed into peers.credential_sealed and have the key
    sent to a peer URL of theirs. Each has its own HKDF label now."""
    state = _state(tmp_path / "a")
    repo = _repo(state, db)
    repo.create()
    repo.prepare()
    peers = Sealer(state / "pki")
    with pytest.raises(PeerUnavailable, match="another CA"):
        peers.unseal(_sealed(db)[1], "evil")
    assert peers.unseal(peers.seal("peer secret"), "p") == "peer secret"  # unchanged label
    with pytest.raises(ValueError, match="own label"):
        KeyRepository(state / "fernet-keys", db=db, sealer=peers)
    # A table sealed by a development build under the peers' label: refused clearly.
    with db.session() as session:
        for number in (0, 1):
            session.execute(update(TokenKey).where(TokenKey.number == number).values(
                sealed=peers.seal(Fernet.generate_key().decode())))
    with pytest.raises(RuntimeError, match="peer secrets' label"):
        _repo(state, db).prepare()


def test_imported_files_are_never_imported_again(db: Database, tmp_path: Path) -> None:
    """Review finding: the key files stayed after the import and were never rotated, so a
    table emptied later brought long-retired keys back at the next start."""
    state = _state(tmp_path / "a")
    repo = _repo(state, db)
    repo.create()
    repo.prepare()
    assert not repo.directory.exists() and (state / "fernet-keys.imported").is_dir()
    assert not repo.create()  # `atwill init` again: the table holds the keys
    assert not repo.directory.exists()
    repo.rotate()
    with db.session() as session:
        session.execute(delete(TokenKey))
    with pytest.raises(RuntimeError, match="run 'atwill init'"):
        _repo(state, db).prepare()
    assert repo.create()  # init then makes new keys, imported at the next start
    fresh = _repo(state, db)
    fresh.prepare()
    assert sorted(_sealed(db)) == [0, 1]
    assert not repo.directory.exists()
    assert sorted(p.name for p in (state / "fernet-keys.imported").iterdir()) == ["0", "1"]


def test_rotate_before_any_start_imports_and_renames(db: Database, tmp_path: Path) -> None:
    repo = _repo(_state(tmp_path / "a"), db)
    repo.create()
    repo.rotate()
    assert not repo.directory.exists()
    assert (repo.directory.parent / "fernet-keys.imported").is_dir()
