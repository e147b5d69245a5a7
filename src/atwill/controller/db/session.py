"""Engine and session factory; SQLite gets WAL, foreign keys and a busy timeout.

Several controller worker processes share one SQLite file: WAL lets them read while one
writes, and a writer waits up to BUSY_TIMEOUT seconds for another's commit. A session
opened inside immediate() begins with BEGIN IMMEDIATE (see servers/locks.py).
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc, inspect, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT = 30  # seconds
RECYCLE = 1800  # seconds: a pooled server connection older than this is opened anew
# A pooled server connection idle longer than this is pinged before reuse: a NAT's or a
# load balancer's idle timeout, or a failover, drops it without a word (nothing to read).
IDLE_PING = 60.0  # seconds
_CHECKED_IN = "atwill_checked_in"  # the pool record's info key: when it was last returned
# Set by immediate(); taken by the first session opened in its block.
_immediate: ContextVar[list[bool] | None] = ContextVar("atwill_immediate", default=None)


@contextmanager
def immediate() -> Iterator[None]:
    """The next session opened in this block (this thread or task) takes SQLite's write
    lock at its start. Only the first: a nested session waiting for it would wait for
    the busy timeout."""
    token = _immediate.set([True])
    try:
        yield
    finally:
        _immediate.reset(token)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=16, connect_args={
            "check_same_thread": False, "timeout": BUSY_TIMEOUT})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "savepoint")
        def _savepoint(conn, _name):  # noqa: ANN001
            # pysqlite begins a transaction only before a write: a SAVEPOINT with none open
            # begins one itself, and its RELEASE commits it — the outer transaction's later
            # rollback then undid nothing (a session that only read before its savepoint).
            # BEGIN IMMEDIATE: a savepoint is for writes, and a deferred transaction that
            # read first fails at once (no busy wait) when another writer got in between.
            if not conn.connection.dbapi_connection.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # The driver atwill[postgres] installs; SQLAlchemy's default would be psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, pool_size=8, max_overflow=16, pool_recycle=RECYCLE)
    except ModuleNotFoundError as error:
        # The driver is an extra: say how to get it rather than show an import trace.
        extra = " (pip install 'atwill[postgres]')" if parsed.get_backend_name() \
            == "postgresql" else ""
        raise ValueError(f"the database URL needs the {parsed.get_backend_name()} driver "
                         f"{error.name!r}, which is not installed{extra}") from None
    event.listen(engine, "checkout", _alive)
    event.listen(engine, "checkin", _returned)
    return engine


def _returned(_dbapi_conn, record) -> None:  # noqa: ANN001
    record.info[_CHECKED_IN] = time.monotonic()


def _alive(dbapi_conn, record, _proxy) -> None:  # noqa: ANN001
    """Hand out only a live server connection, without a round trip when it is quiet.

    pool_pre_ping sent a SELECT 1 on every checkout: one round trip of each request's
    few. An idle connection in the pool has nothing to read; when the server restarts or
    ends the session (pg_terminate_backend, idle_session_timeout) it sends a message and
    closes the socket, which makes it readable. Only then is the server asked; a dead
    connection raises DisconnectionError, and the pool opens a new one in its place (the
    check the Go MySQL driver makes before reusing a connection). A peer lost without a
    word (a NAT's or load balancer's idle timeout, a failover) leaves nothing to read:
    a connection idle for more than IDLE_PING seconds is asked anyway, so only a busy one,
    back in use within IDLE_PING, goes without the round trip. RECYCLE bounds how long one
    lives.
    """
    returned = record.info.get(_CHECKED_IN)  # None: new, just connected
    if _quiet(dbapi_conn) and (returned is None or time.monotonic() - returned <= IDLE_PING):
        return
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as error:  # noqa: BLE001 - any failure: this connection is gone
        raise exc.DisconnectionError(f"the pooled database connection is dead: {error}") \
            from error


def _quiet(dbapi_conn) -> bool:  # noqa: ANN001
    """Open, and nothing waiting on its socket."""
    if getattr(dbapi_conn, "closed", False):
        return False
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # noqa: BLE001 - no socket to look at: ask the server
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is already there)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def is_initialised(engine: Engine) -> bool:
    return "alembic_version" in inspect(engine).get_table_names()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        with self.sessions() as session:
            try:
                _begin(session)
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def _begin(session: Session) -> None:
    wanted = _immediate.get()
    if wanted and wanted[0] and session.get_bind().dialect.name == "sqlite":
        wanted[0] = False
        # pysqlite begins only before a write; this begins now, with the write lock.
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
