"""Fernet token keys, rotated the way Keystone rotates them.

Key 0 is staged (the next primary), the highest number is the primary that encrypts,
and every key in between still decrypts tokens issued before the last rotation.

Where they live:
- A controller's keys (a repository given its database): the table token_keys (migration
  0029), shared by every controller of that database, each key sealed with the key
  derived from the cluster CA's private key for this purpose (peers/seal.py TOKEN_KEYS:
  not the peers' secrets' key, so a sealed token key copied into a peer's credential
  cannot be opened and sent away). Every controller holds that CA key in its state
  directory; the database does not, so a copy of it yields no key.
- Without a database, or while the table does not exist yet (before migration 0029):
  STATE_DIR/fernet-keys/, one file per key, as Keystone's. `atwill init` still writes the
  first two keys there.
- prepare() (every controller process before it serves) and rotate() import those files
  into the table when it holds no key: a state directory made before 0029 keeps every
  token it issued. The first controller to get the table's lock imports; the others then
  find rows and use them. Once the table holds keys, prepare() and rotate() rename the
  directory fernet-keys.imported (never read again, nor rotated): a table emptied later
  is refused at the next start ("run 'atwill init'", which then makes new keys) instead
  of bringing long-retired keys back. init() writes no files when the table holds keys.

A rotation (`atwill keys rotate` on any controller) writes the table, and every process
of every controller re-reads it at most every RECHECK seconds (one query of a few rows,
never per request), and at once when this state directory's `fernet-keys.changed` says a
rotation was made here (rotate() appends to it; a stat() per request, as the token cache's
worker stamp). A process that cannot read the table, or cannot open what it reads (a
row sealed with another CA key, a corrupt row), keeps the keys it has and logs why, once:
never a 500. A start with no keys loaded refuses in one line. A rotation opens every row
first and writes nothing when one cannot be opened.
The staged key is what makes the delay harmless: a controller that rotated encrypts with
the key the others still hold as staged.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .db.base import utcnow
from .db.session import immediate
from .db.token_keys import TokenKey
from .peers.seal import INFO as PEER_SECRETS
from .peers.seal import TOKEN_KEYS, Sealer
from .worker_stamp import WorkerStamp

if TYPE_CHECKING:
    from .db.session import Database

RECHECK = 2.0  # seconds: how stale another controller's view of the keys can be
CHANGED = ".changed"  # beside the directory: fernet-keys.changed
IMPORTED = ".imported"  # the directory once the table holds keys: fernet-keys.imported
log = logging.getLogger(__name__)


def imported(directory: Path) -> Path:
    return directory.with_name(directory.name + IMPORTED)


def initialised(directory: Path) -> bool:
    """`atwill init` made this state directory's keys (still files, or imported)."""
    return directory.is_dir() or imported(directory).is_dir()


class KeyRepository:
    def __init__(self, directory: Path, max_active: int = 3, db: Database | None = None,
                 sealer: Sealer | None = None, recheck: float = RECHECK) -> None:
        if db is not None and sealer is None:
            raise ValueError("keys kept in the database need a sealer")
        if sealer is not None and sealer.info != TOKEN_KEYS:
            raise ValueError("token keys are sealed under their own label (seal.TOKEN_KEYS)")
        self.directory = directory
        self.max_active = max(max_active, 2)
        self.db, self.sealer, self.recheck = db, sealer, recheck
        self.changed = WorkerStamp(directory.with_name(directory.name + CHANGED))
        self._version: object = None  # what the keys were loaded from
        self._fernet: MultiFernet | None = None
        self._checked = -math.inf  # monotonic time of the last load
        self._seen: object = None  # the .changed file at the last load
        self._table = False  # token_keys exists (once seen, it stays)
        self._lock = threading.Lock()
        self._failed = ""  # the last reason the keys could not be reloaded (logged once)

    # -- the files -------------------------------------------------------------------

    def exists(self) -> bool:
        return self.directory.is_dir() and any(self._numbers())

    def _numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())

    def _write(self, number: int, key: bytes) -> None:
        tmp = self.directory / f".{number}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        tmp.replace(self.directory / str(number))

    def _files(self) -> dict[int, bytes]:
        return {n: (self.directory / str(n)).read_bytes().strip() for n in self._numbers()}

    def _files_stamp(self) -> tuple[tuple[int, int], ...]:
        return tuple((n, (self.directory / str(n)).stat().st_mtime_ns)
                     for n in self._numbers())

    def create(self) -> bool:
        """Make the staged and the first primary key files; False when they exist already
        (a controller imports them into the database at its start) or the database holds
        the keys."""
        if self.exists() or (self.shared() and self._rows()):
            return False
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(0, Fernet.generate_key())
        self._write(1, Fernet.generate_key())
        return True

    def _rotate_files(self) -> int:
        numbers = self._numbers()
        if not numbers:
            raise RuntimeError(f"no keys in {self.directory}; run 'atwill init'")
        primary = max(numbers) + 1
        (self.directory / "0").replace(self.directory / str(primary))
        self._write(0, Fernet.generate_key())
        numbers = self._numbers()
        for old in [n for n in numbers if n != 0][: -(self.max_active - 1)]:
            (self.directory / str(old)).unlink()
        return primary

    # -- the table -------------------------------------------------------------------

    def shared(self) -> bool:
        """The keys are (or would be) in the database every controller reads."""
        if self.db is None:
            return False
        if not self._table:
            self._table = inspect(self.db.engine).has_table(TokenKey.__tablename__)
        return self._table

    @contextmanager
    def _locked(self) -> Iterator[Session]:
        """A transaction holding the table against other writers (readers never wait)."""
        assert self.db is not None
        with immediate(), self.db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("LOCK TABLE token_keys IN SHARE ROW EXCLUSIVE MODE"))
            yield session

    def _seal(self, key: bytes) -> str:
        assert self.sealer is not None
        return self.sealer.seal(key.decode())

    def _unseal(self, number: int, sealed: str) -> bytes:
        """The key of a row, checked to be a Fernet key; RuntimeError (one line) when it
        cannot be opened."""
        assert self.sealer is not None
        try:
            key = self.sealer.fernet().decrypt(sealed.encode())
        except InvalidToken:
            if self._sealed_for_peers(sealed):
                raise RuntimeError(
                    "the token keys in the database were sealed under the peer secrets' "
                    "label (a development build of migration 0029): delete the rows of "
                    "token_keys, rename fernet-keys.imported back to fernet-keys and "
                    "start again") from None
            raise RuntimeError(
                f"token key {number} in the database was sealed with another cluster CA "
                f"key than {self.sealer.path} (or altered): every controller of this "
                "database needs the same pki/ca-key.pem (atwill controller "
                "export-bundle / add)") from None
        try:
            Fernet(key)
        except ValueError:
            raise RuntimeError(f"token key {number} in the database is not a Fernet key "
                               "(altered)") from None
        return key

    def _sealed_for_peers(self, sealed: str) -> bool:
        assert self.sealer is not None
        try:
            Sealer(self.sealer.path.parent, PEER_SECRETS).fernet().decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def _import(self, session: Session) -> int:
        """This state directory's key files into the empty table; how many."""
        keys = self._files()
        if not keys:
            raise RuntimeError(f"no token keys in the database nor in {self.directory}; "
                               "run 'atwill init'")
        for number, key in keys.items():
            session.add(TokenKey(number=number, sealed=self._seal(key)))
        log.info("imported %d token keys from %s into the database", len(keys),
                 self.directory)
        return len(keys)

    def _rows(self) -> tuple[tuple[int, str], ...]:
        assert self.db is not None
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(TokenKey.number, TokenKey.sealed)
                                .order_by(TokenKey.number)).all()
        return tuple((number, sealed) for number, sealed in rows)

    def prepare(self) -> None:
        """Before serving: import the key files when the table holds none (the first
        start after migration 0029), then load the keys."""
        if self.shared() and not self._rows():  # the lock only when there is work
            with self._locked() as session:
                if not session.scalar(select(func.count()).select_from(TokenKey)):
                    self._import(session)
        self._checked = -math.inf
        self._current()
        self._retire_files()

    def _retire_files(self) -> None:
        """The files renamed once the table holds keys: never imported again."""
        if not self.directory.is_dir() or not self.shared() or not self._rows():
            return
        target = imported(self.directory)
        try:
            if target.is_dir():  # a former import's; the table holds none of those keys
                shutil.rmtree(target)
            self.directory.rename(target)
        except FileNotFoundError:
            return  # another process of this state directory renamed it
        except OSError as error:
            log.warning("cannot rename %s to %s: %s", self.directory, target, error)
            return
        log.info("the token keys are in the database: %s renamed %s", self.directory,
                 target.name)

    def _rotate_table(self) -> int:
        with self._locked() as session:
            if not session.scalar(select(func.count()).select_from(TokenKey)):
                self._import(session)
                session.flush()
            rows = {key.number: key for key in session.scalars(select(TokenKey))}
            if 0 not in rows:
                raise RuntimeError("the database holds no staged token key (number 0)")
            for number, row in rows.items():  # nothing written unless all open here
                self._unseal(number, row.sealed)
            primary = max(rows) + 1
            session.add(TokenKey(number=primary, sealed=rows[0].sealed, created_at=utcnow()))
            rows[0].sealed, rows[0].created_at = self._seal(Fernet.generate_key()), utcnow()
            kept = sorted(n for n in rows if n != 0) + [primary]
            for old in kept[: -(self.max_active - 1)]:
                session.delete(rows[old])
        return primary

    # -- both ------------------------------------------------------------------------

    def rotate(self) -> int:
        """Promote the staged key, stage a new one, drop the oldest; returns the new
        primary. In the table when it exists: for every controller of the database."""
        shared = self.shared()
        primary = self._rotate_table() if shared else self._rotate_files()
        self.changed.touch()  # this controller's processes: at their next request
        self._checked = -math.inf
        if shared:
            self._retire_files()
        return primary

    def _load(self) -> None:
        rows = self._rows() if self.shared() else ()
        # No database, no table yet, or nothing imported yet: the files.
        version = ("table", rows) if rows else ("files", self._files_stamp())
        if version == self._version:
            return
        if rows:
            keys = {number: self._unseal(number, sealed) for number, sealed in rows}
        else:
            keys = self._files()
        if not keys:
            raise RuntimeError(f"no token keys in {self.directory}; run 'atwill init'")
        order = sorted((n for n in keys if n != 0), reverse=True) + [0] * (0 in keys)
        self._fernet = MultiFernet([Fernet(keys[n]) for n in order])
        self._version = version

    def _fresh(self, seen: object) -> bool:
        return (self._fernet is not None and seen == self._seen
                and time.monotonic() - self._checked < self.recheck)

    def _current(self) -> None:
        seen = self.changed.read()
        if self._fresh(seen):
            return
        # Another thread already loading: the keys in hand serve meanwhile.
        if not self._lock.acquire(blocking=self._fernet is None):
            return
        try:
            if self._fresh(seen):
                return
            self._checked, self._seen = time.monotonic(), seen
            try:
                self._load()
            except (SQLAlchemyError, RuntimeError, ValueError) as error:
                if self._fernet is None:
                    raise
                reason = (str(error).splitlines() or [type(error).__name__])[0]
                if reason != self._failed:  # once, not every RECHECK
                    log.warning("cannot read the token keys (keeping those loaded): %s",
                                reason)
                self._failed = reason
            else:
                self._failed = ""
        finally:
            self._lock.release()

    def stamp(self) -> object:
        """Changes whenever a key is added, rotated or removed (by any controller, seen
        within RECHECK; by this state directory's, at once)."""
        self._current()
        return self._version

    def fernet(self) -> MultiFernet:
        """Primary first, then the others, the staged key last."""
        self._current()
        assert self._fernet is not None
        return self._fernet
