"""agent/hypervisor/migration: the QMP conversation of a live migration's source and
destination, against a scripted QEMU (the lab test migrates a real one)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor import migration
from atwill.agent.hypervisor.qmp import QMPError

TLS = {"username": "atwill-migration-3", "key": "ab" * 32}
ORDER = migration.Order(migration=3, host="100.72.0.9", nbd_port=10809, port=49152, tls=TLS)
KEYS = Path("/i/migration-tls")


class FakeQemu:
    """Answers QMP commands: the mirror gets ready after one poll, the migration completes
    after `polls` query-migrate calls (or fails / never ends)."""

    def __init__(self, polls: int = 2, ending: str = "completed") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.polls, self.ending = polls, ending
        self.job_polls, self.jobs = 0, False
        self.status = "running"

    def __call__(self, command: str, arguments: Any = None) -> Any:
        self.calls.append((command, arguments))
        if command == "blockdev-mirror":
            self.jobs = True
        if command == "block-job-cancel":
            self.jobs = False
        if command == "query-block-jobs":
            self.job_polls += 1
            return [{"device": migration.JOB, "len": 100, "offset": 100,
                     "ready": self.job_polls > 1}] if self.jobs else []
        if command == "query-migrate":
            self.polls -= 1
            done = self.polls <= 0 and self.ending != "never"
            return {"status": self.ending if done else "active",
                    "ram": {"total": 10, "transferred": 5, "remaining": 5}}
        if command == "query-status":
            return {"status": self.status}
        if command == "stop":
            self.status = "paused"
        if command == "cont":
            self.status = "running"
        return {}

    def names(self) -> list[str]:
        return [c for c, _ in self.calls if not c.startswith("query-")]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration, "POLL", 0)


def test_a_migration_mirrors_then_migrates_then_cancels_the_mirror() -> None:
    qemu, seen = FakeQemu(), {}
    migration.send(qemu, lambda: ORDER, seen.update, timeout=30, keys=KEYS)
    assert qemu.names() == ["object-add", "blockdev-add", "blockdev-mirror",
                            "migrate-set-capabilities", "migrate-set-parameters", "migrate",
                            "block-job-cancel", "blockdev-del", "migrate-set-parameters",
                            "object-del"]
    calls = dict(qemu.calls)
    # The mirror and the stream are TLS with this migration's key.
    assert calls["object-add"] == {"qom-type": "tls-creds-psk", "id": migration.CREDS,
                                   "dir": str(KEYS), "endpoint": "client",
                                   "username": "atwill-migration-3"}
    assert calls["blockdev-add"]["tls-creds"] == migration.CREDS
    assert next(c for c in qemu.calls if c[0] == "migrate-set-parameters") == (
        "migrate-set-parameters", {
        "downtime-limit": 300, "max-bandwidth": migration.UNTHROTTLED,
        "tls-creds": migration.CREDS})
    assert calls["object-del"] == {"id": migration.CREDS}
    assert calls["blockdev-add"]["server"] == {"type": "inet", "host": "100.72.0.9",
                                               "port": "10809"}
    assert calls["blockdev-mirror"]["sync"] == "top"
    # Guest writes reach both disks once the mirror is ready: equal at the switch-over.
    assert calls["blockdev-mirror"]["copy-mode"] == "write-blocking"
    assert calls["migrate"] == {"uri": "tcp:100.72.0.9:49152"}
    assert seen["memory_total"] == 10 and seen["disk_remaining"] == 0


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_failed_migration_leaves_the_source_as_it_was(ending: str) -> None:
    qemu = FakeQemu(ending=ending)
    with pytest.raises(QMPError, match=ending):
        migration.send(qemu, lambda: ORDER, lambda _: None, timeout=30, keys=KEYS)
    names = qemu.names()
    assert names[-5:] == ["migrate_cancel", "block-job-cancel", "blockdev-del",
                          "migrate-set-parameters", "object-del"]
    assert "cont" not in names and qemu.status == "running"


def test_abort_and_force_complete() -> None:
    qemu = FakeQemu(polls=1000, ending="never")
    orders = iter([ORDER] * 5 + [migration.Order(**{**ORDER.__dict__, "abort": True})] * 99)
    with pytest.raises(migration.Aborted):
        migration.send(qemu, lambda: next(orders), lambda _: None, timeout=30, keys=KEYS)
    assert "migrate_cancel" in qemu.names()
    forced = migration.Order(**{**ORDER.__dict__, "force_complete": True})
    qemu = FakeQemu(polls=3)
    migration.send(qemu, lambda: forced, lambda _: None, timeout=30, keys=KEYS)
    assert "stop" in qemu.names() and "cont" not in qemu.names()


def test_a_paused_guest_runs_again_after_a_failure() -> None:
    forced = migration.Order(**{**ORDER.__dict__, "force_complete": True})
    qemu = FakeQemu(polls=3, ending="failed")
    with pytest.raises(QMPError):
        migration.send(qemu, lambda: forced, lambda _: None, timeout=30, keys=KEYS)
    assert qemu.names()[-1] == "cont" and qemu.status == "running"


def test_timeout_aborts() -> None:
    qemu = FakeQemu(polls=10**9, ending="never")
    with pytest.raises(QMPError, match="in time"):
        migration.send(qemu, lambda: ORDER, lambda _: None, timeout=0, keys=KEYS)
    assert "migrate_cancel" in qemu.names()


def test_free_ports_are_distinct() -> None:
    first, second = migration.free_ports("127.0.0.1")
    assert first != second and first > 0


@pytest.mark.parametrize("tls", [None, {"username": "u"}, {"username": "a:b", "key": "ab" * 32},
                                 {"username": "u", "key": "short"}])
def test_no_migration_without_its_tls_key(tls: Any) -> None:
    qemu = FakeQemu()
    order = migration.Order(**{**ORDER.__dict__, "tls": tls})
    with pytest.raises(ValueError, match="TLS key"):
        migration.send(qemu, lambda: order, lambda _: None, timeout=30, keys=KEYS)
    assert qemu.calls == []  # nothing was sent, in the clear or otherwise


class FakeMonitor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def execute(self, command: str, arguments: Any = None, timeout: float = 0) -> Any:
        self.calls.append((command, arguments))
        if command == "query-block":
            return [{"device": migration.DRIVE, "inserted": {"node-name": "n0"}}]
        return {}


def test_the_destination_accepts_only_tls_with_the_key() -> None:
    qmp = FakeMonitor()
    migration.receive(qmp, "100.72.0.9", 10809, 49152, KEYS)  # type: ignore[arg-type]
    calls = [(c, a) for c, a in qmp.calls if c != "query-block"]
    assert calls == [
        ("object-add", {"qom-type": "tls-creds-psk", "id": migration.CREDS,
                        "dir": str(KEYS), "endpoint": "server"}),
        ("nbd-server-start", {"addr": {"type": "inet", "data": {
            "host": "100.72.0.9", "port": "10809"}}, "tls-creds": migration.CREDS}),
        ("block-export-add", {"type": "nbd", "id": migration.EXPORT, "name": migration.DRIVE,
                              "node-name": "n0", "writable": True}),
        ("migrate-set-parameters", {"tls-creds": migration.CREDS}),
        ("migrate-incoming", {"uri": "tcp:100.72.0.9:49152"})]
    stopped = FakeQemu()
    migration.stop_serving(stopped)
    assert stopped.names() == ["block-export-del", "nbd-server-stop",
                               "migrate-set-parameters", "object-del"]


def test_the_key_file_is_for_qemus_user_alone(tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"")
    keys = migration.key_directory(tmp_path, disk, migration.Tls.of(TLS))
    assert (keys / "keys.psk").read_text() == f"atwill-migration-3:{'ab' * 32}\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "keys.psk").stat().st_mode) == 0o400
    assert (keys / "keys.psk").stat().st_uid == disk.stat().st_uid
    assert migration.key_directory(tmp_path, disk, migration.Tls.of(TLS)) == keys  # again


def test_the_switch_over_is_told_before_the_source_tidies_up() -> None:
    qemu = FakeQemu()
    told: list[list[str]] = []
    migration.send(qemu, lambda: ORDER, lambda _: None, timeout=30, keys=KEYS,
                   switched=lambda: told.append(qemu.names()))
    (before,) = told
    assert before[-1] == "migrate" and "block-job-cancel" not in before
    assert "block-job-cancel" in qemu.names()[len(before):]
