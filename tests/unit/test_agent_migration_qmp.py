"""agent/hypervisor/migration: the QMP conversation of a live migration's source and
destination, against a scripted QEMU (the lab test migrates a real one)."""

from __future__ import annotations

from typing import Any

import pytest

from atwill.agent.hypervisor import migration
from atwill.agent.hypervisor.qmp import QMPError

ORDER = migration.Order(migration=3, host="100.72.0.9", nbd_port=10809, port=49152)


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
    migration.send(qemu, lambda: ORDER, seen.update, timeout=30)
    assert qemu.names() == ["blockdev-add", "blockdev-mirror", "migrate-set-capabilities",
                            "migrate-set-parameters", "migrate", "block-job-cancel",
                            "blockdev-del"]
    calls = dict(qemu.calls)
    assert calls["blockdev-add"]["server"] == {"type": "inet", "host": "100.72.0.9",
                                               "port": "10809"}
    assert calls["blockdev-mirror"]["sync"] == "top"
    assert calls["migrate-set-parameters"]["downtime-limit"] == 300
    assert calls["migrate"] == {"uri": "tcp:100.72.0.9:49152"}
    assert seen["memory_total"] == 10 and seen["disk_remaining"] == 0


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_failed_migration_leaves_the_source_as_it_was(ending: str) -> None:
    qemu = FakeQemu(ending=ending)
    with pytest.raises(QMPError, match=ending):
        migration.send(qemu, lambda: ORDER, lambda _: None, timeout=30)
    names = qemu.names()
    assert names[-3:] == ["migrate_cancel", "block-job-cancel", "blockdev-del"]
    assert "cont" not in names and qemu.status == "running"


def test_abort_and_force_complete() -> None:
    qemu = FakeQemu(polls=1000, ending="never")
    orders = iter([ORDER] * 5 + [migration.Order(**{**ORDER.__dict__, "abort": True})] * 99)
    with pytest.raises(migration.Aborted):
        migration.send(qemu, lambda: next(orders), lambda _: None, timeout=30)
    assert "migrate_cancel" in qemu.names()
    forced = migration.Order(**{**ORDER.__dict__, "force_complete": True})
    qemu = FakeQemu(polls=3)
    migration.send(qemu, lambda: forced, lambda _: None, timeout=30)
    assert "stop" in qemu.names() and "cont" not in qemu.names()


def test_a_paused_guest_runs_again_after_a_failure() -> None:
    forced = migration.Order(**{**ORDER.__dict__, "force_complete": True})
    qemu = FakeQemu(polls=3, ending="failed")
    with pytest.raises(QMPError):
        migration.send(qemu, lambda: forced, lambda _: None, timeout=30)
    assert qemu.names()[-1] == "cont" and qemu.status == "running"


def test_timeout_aborts() -> None:
    qemu = FakeQemu(polls=10**9, ending="never")
    with pytest.raises(QMPError, match="in time"):
        migration.send(qemu, lambda: ORDER, lambda _: None, timeout=0)
    assert "migrate_cancel" in qemu.names()


def test_free_ports_are_distinct() -> None:
    first, second = migration.free_ports("127.0.0.1")
    assert first != second and first > 0
