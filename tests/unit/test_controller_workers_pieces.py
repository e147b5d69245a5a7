"""The pieces behind several controller workers: stamp files, the leader lock, BEGIN
IMMEDIATE, the token cache and revision signal across workers, the pre-fork parent."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from atwill import config
from atwill.controller import background, prefork, revision_signal, worker_stamp
from atwill.controller.db.session import Database, immediate
from atwill.controller.identity import token_cache
from atwill.controller.identity.token_cache import TokenCache
from atwill.controller.servers.locks import serialized
from atwill.controller.worker_stamp import WorkerStamp


def test_every_touch_changes_the_stamp_and_a_restart_changes_the_inode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = WorkerStamp(tmp_path / "x.stamp")
    assert stamp.read() is None
    seen = {stamp.touch() for _ in range(5)}
    assert len(seen) == 5 and stamp.read() in seen
    monkeypatch.setattr(worker_stamp, "MAX_BYTES", 5)
    before = stamp.read()
    after = stamp.touch()
    assert after == stamp.read() and after is not None and before is not None
    assert after[0] != before[0] and after[1] == 0
    assert WorkerStamp(tmp_path / "gone" / "x.stamp").touch() is None  # no error


def test_the_leader_lock_is_held_by_one_open_file_until_closed(tmp_path: Path) -> None:
    path = tmp_path / background.LEADER_FILE
    first = background.try_lock(path)
    assert first is not None
    assert background.try_lock(path) is None  # another worker: flock is per open file
    os.close(first)
    again = background.try_lock(path)
    assert again is not None
    assert os.get_inheritable(again) is False  # no child process keeps the lock
    os.close(again)


def test_a_serialized_section_begins_immediate_and_only_its_first_session(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    other = Database(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        with serialized("sqlite"), db.session() as session:
            raw = session.connection().connection.dbapi_connection
            assert raw.in_transaction  # the write lock is taken before any read
            with other.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                with pytest.raises(Exception, match="locked"):
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
            with db.session() as nested:  # reads freely, does not wait for the lock
                assert not nested.connection().connection.dbapi_connection.in_transaction
                assert nested.scalar(text("SELECT count(*) FROM t")) == 0
            session.execute(text("INSERT INTO t VALUES (1)"))
        with immediate(), db.session() as session:
            assert session.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        db.dispose()
        other.dispose()


def _validated(cache: TokenCache, token: str) -> None:
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    cache.put(token, "credentials", later, token_cache.generation())


def test_an_identity_change_in_one_worker_empties_the_others_cache(tmp_path: Path) -> None:
    here, there = TokenCache(), TokenCache()
    for cache in (here, there):
        cache.share(tmp_path / background.IDENTITY_FILE)
        cache.follow("keys")
    _validated(there, "t")
    there.follow("keys")
    assert there.get("t") == "credentials"
    here.changed()  # e.g. a revocation committed by `here`'s process
    assert there.get("t") == "credentials"  # until its next request...
    there.follow("keys")  # ...which starts by following
    assert there.get("t") is None


def test_a_bump_in_another_worker_wakes_this_ones_waiters(tmp_path: Path) -> None:
    path = tmp_path / background.REVISION_FILE

    async def scenario() -> float:
        revision_signal.share(path)
        follower = asyncio.create_task(revision_signal.follow(path))
        wakeup = revision_signal.changed.subscribe()
        WorkerStamp(path).touch()  # what another worker's commit does
        started = time.monotonic()
        await asyncio.wait_for(wakeup.wait(), 2)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        return time.monotonic() - started

    assert asyncio.run(scenario()) < revision_signal.FOLLOW_EVERY * 4
    assert path not in revision_signal._shared  # the follower leaves no trace


def test_workers_setting_is_bounded(tmp_path: Path) -> None:
    assert config.load(tmp_path, workers=2).effective_workers == 2
    assert config.load(tmp_path).effective_workers == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="workers"):
        config.load(tmp_path, workers=-1)


def test_the_parent_replaces_a_dead_worker_and_stops_all_at_a_signal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefork, "RESTART_DELAY", 0.0)
    starts = tmp_path / "starts"

    def serve(slot: int) -> None:
        with starts.open("a") as out:
            out.write(f"{slot}\n")
        if slot == 0 and starts.read_text().split().count("0") == 1:
            os._exit(3)  # slot 0's first worker dies at once (not whichever started first)
        time.sleep(30)

    def stop_soon() -> None:
        while len(starts.read_text().split() if starts.exists() else []) < 3:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    exited: list[int] = []
    parent = prefork.Prefork(2, serve, on_exit=lambda: exited.append(1))
    monkeypatch.setattr(prefork.signal, "raise_signal", lambda sig: exited.append(sig))
    import threading

    threading.Thread(target=stop_soon, daemon=True).start()
    assert parent.run() == 0
    # The replacement serves the dead worker's sockets (its slot).
    assert sorted(starts.read_text().split()) == ["0", "0", "1"] and not parent.children
    assert exited == [1, signal.SIGTERM]


def test_the_parent_gives_up_when_workers_die_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefork, "RESTART_DELAY", 0.0)
    parent = prefork.Prefork(1, lambda _slot: os._exit(1))
    assert parent.run() == 1
    assert prefork.describe(256) == "exit 1" and prefork.describe(9) == "signal 9"


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_workers_die_with_a_parent_killed_outright(tmp_path: Path) -> None:
    started = tmp_path / "worker"

    def serve(_slot: int) -> None:
        started.write_text(str(os.getpid()))
        time.sleep(30)

    parent = os.fork()
    if parent == 0:
        try:
            prefork.Prefork(1, serve).run()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 10
    while not started.exists() or not started.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker = int(started.read_text())
    os.kill(parent, signal.SIGKILL)
    os.waitpid(parent, 0)
    while not _gone(worker):  # it would hold the port against a restart
        assert time.monotonic() < deadline, "the worker outlived its parent"
        time.sleep(0.02)
