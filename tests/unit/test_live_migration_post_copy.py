"""Post-copy as an opt-in (Nova's live_migration_permit_post_copy): the orders carry it,
both QEMUs get postcopy-ram, the source switches instead of pausing or giving up, and a
migration in post-copy is neither aborted nor rolled back (tests/host migrates a real
guest this way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from atwill.agent.hypervisor import migration
from atwill.agent.hypervisor.qmp import QMPError
from atwill.controller.db.models import Instance, Migration, Node
from atwill.controller.servers import live_migration
from atwill.controller.servers.live_migration_agents import annotate, incoming, report
from atwill.core import migration_states
from atwill.core.errors import BadRequest
from atwill.core.microversion import Version
from tests.unit.live_migration_rows import made

TLS = {"username": "atwill-migration-3", "key": "ab" * 32}
ORDER = migration.Order(migration=3, host="100.72.0.9", nbd_port=10809, port=49152, tls=TLS,
                        post_copy=True)
KEYS = Path("/i/migration-tls")
POSTCOPY = {"capability": "postcopy-ram", "state": True}


class PostCopyQemu:
    """A source QEMU whose pre-copy never converges; after migrate-start-postcopy it is
    postcopy-active for two polls, then ends as `ending`."""

    def __init__(self, ending: str = "completed") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.ending, self.after_switch = ending, None
        self.jobs = False

    def __call__(self, command: str, arguments: Any = None) -> Any:
        self.calls.append((command, arguments))
        if command == "blockdev-mirror":
            self.jobs = True
        if command == "block-job-cancel":
            self.jobs = False
        if command == "query-block-jobs":
            return [{"device": migration.JOB, "len": 8, "offset": 8,
                     "ready": True}] if self.jobs else []
        if command == "migrate-start-postcopy":
            self.after_switch = 0
        if command == "query-migrate":
            if self.after_switch is None:
                status = "active"
            else:
                self.after_switch += 1
                status = "postcopy-active" if self.after_switch <= 2 else self.ending
            return {"status": status, "ram": {"total": 10, "transferred": 5, "remaining": 5}}
        if command == "query-status":
            return {"status": "running"}
        return {}

    def names(self) -> list[str]:
        return [c for c, _ in self.calls if not c.startswith("query-")]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration, "POLL", 0)


def _order(**changes: Any) -> migration.Order:
    return migration.Order(**{**ORDER.__dict__, **changes})


def test_force_complete_switches_to_post_copy_instead_of_pausing() -> None:
    qemu, seen = PostCopyQemu(), {}
    migration.send(qemu, lambda: _order(force_complete=True), seen.update, timeout=30,
                   keys=KEYS)
    names = qemu.names()
    assert "migrate-start-postcopy" in names and "stop" not in names
    assert names.index("migrate") < names.index("migrate-start-postcopy")
    capabilities = dict(qemu.calls)["migrate-set-capabilities"]["capabilities"]
    assert POSTCOPY in capabilities and {"capability": "auto-converge",
                                         "state": True} in capabilities
    assert seen["post_copy"] is True  # reported: the controller refuses an abort now


def test_without_post_copy_force_complete_still_pauses() -> None:
    qemu = PostCopyQemu()
    order = _order(post_copy=False, force_complete=True)
    answers = iter([{"status": "active"}] * 3 + [{"status": "completed"}] * 9)
    real = qemu.__call__

    def execute(command: str, arguments: Any = None) -> Any:
        return next(answers) if command == "query-migrate" else real(command, arguments)
    migration.send(execute, lambda: order, lambda _: None, timeout=30, keys=KEYS)
    assert "stop" in qemu.names() and "migrate-start-postcopy" not in qemu.names()
    capabilities = dict(qemu.calls)["migrate-set-capabilities"]["capabilities"]
    assert POSTCOPY not in capabilities


def test_the_timeout_switches_to_post_copy_instead_of_aborting() -> None:
    qemu = PostCopyQemu()
    migration.send(qemu, lambda: ORDER, lambda _: None, timeout=0, keys=KEYS)
    assert "migrate-start-postcopy" in qemu.names() and "migrate_cancel" not in qemu.names()


def test_an_abort_after_the_switch_is_ignored_it_can_only_complete() -> None:
    qemu = PostCopyQemu()

    def order() -> migration.Order:
        return _order(force_complete=True, abort=qemu.after_switch is not None)
    migration.send(qemu, order, lambda _: None, timeout=30, keys=KEYS)
    assert "migrate_cancel" not in qemu.names() and qemu.names()[-1] == "object-del"


def test_an_abort_before_the_switch_still_cancels() -> None:
    qemu = PostCopyQemu()
    with pytest.raises(migration.Aborted):
        migration.send(qemu, lambda: _order(force_complete=True, abort=True),
                       lambda _: None, timeout=30, keys=KEYS)
    assert "migrate_cancel" in qemu.names() and "migrate-start-postcopy" not in qemu.names()


@pytest.mark.parametrize("ending", ["failed", "postcopy-paused"])
def test_a_failure_in_post_copy_is_not_rolled_back(ending: str) -> None:
    qemu = PostCopyQemu(ending)
    with pytest.raises(migration.PostCopyFailed, match="guest is lost"):
        migration.send(qemu, lambda: _order(force_complete=True), lambda _: None,
                       timeout=30, keys=KEYS)
    names = qemu.names()
    assert "migrate_cancel" not in names and "cont" not in names


class Monitor:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refuse = refuse

    def execute(self, command: str, arguments: Any = None, timeout: float = 0) -> Any:
        self.calls.append((command, arguments))
        if command == "query-block":
            return [{"device": migration.DRIVE, "inserted": {"node-name": "n0"}}]
        if command == "migrate-set-capabilities" and self.refuse:
            raise QMPError("Postcopy is not supported")
        return {}


def test_the_destination_gets_postcopy_ram_before_it_waits() -> None:
    qmp = Monitor()
    migration.receive(qmp, "100.72.0.9", 10809, 49152, KEYS,  # type: ignore[arg-type]
                      post_copy=True)
    names = [c for c, _ in qmp.calls]
    assert qmp.calls[0] == ("migrate-set-capabilities", {"capabilities": [POSTCOPY]})
    assert names[-1] == "migrate-incoming"
    plain = Monitor()
    migration.receive(plain, "100.72.0.9", 10809, 49152, KEYS)  # type: ignore[arg-type]
    assert "migrate-set-capabilities" not in [c for c, _ in plain.calls]


def test_a_destination_without_userfaultfd_says_so() -> None:
    with pytest.raises(QMPError, match="vm.unprivileged_userfaultfd=1"):
        migration.receive(Monitor(refuse=True), "h", 1, 2, KEYS,  # type: ignore[arg-type]
                          post_copy=True)


# controller ----------------------------------------------------------------------------
# session: tests/unit/conftest.py


def _made(session: Session) -> tuple[Node, Node, Instance, Migration]:
    return made(session, "running")


@pytest.mark.parametrize("permitted", [True, False])
def test_both_orders_say_whether_post_copy_is_permitted(session: Session,
                                                        permitted: bool) -> None:
    src, dst, inst, _ = _made(session)
    (spec,) = [s for s in incoming(session, dst, permitted) if s["id"] == inst.id]
    assert spec["incoming"]["post_copy"] is permitted
    sending = [{"id": inst.id}]
    annotate(session, src, sending, permitted)
    assert sending[0]["migrate_to"]["post_copy"] is permitted
    assert migration.Order.of(sending[0]["migrate_to"]).post_copy is permitted
    assert incoming(session, dst)[0]["incoming"]["post_copy"] is False  # the default


def _sends(record: Migration, **entry: Any) -> dict[str, Any]:
    return {record.instance_uuid: {"state": "running", "migration": {
        "migration": record.id, "status": "running", **entry}}}


def test_post_copy_is_recorded_as_nova_does_and_then_refuses_abort(session: Session) -> None:
    src, dst, inst, record = _made(session)
    report(session, src, _sends(record, post_copy=True, memory_remaining=5))
    assert record.status == migration_states.POST_COPY == "running (post-copy)"
    assert record.status in migration_states.IN_PROGRESS  # still listed by the API
    sending = [{"id": inst.id}]
    annotate(session, src, sending, True)  # the source goes on with it
    assert sending[0]["migrate_to"]["migration"] == record.id
    with pytest.raises(BadRequest, match=r"is running \(post-copy\)\. Cannot abort"):
        live_migration.abort(session, inst, record, Version(2, 65), "req-1", "u")
    with pytest.raises(BadRequest, match="Cannot force complete"):
        live_migration.force_complete(session, inst, record, "req-2", "u")
    assert not record.abort_requested
    # Its end is reported as any other's: the instance moves.
    report(session, src, _sends(record, status="completed"))
    assert (record.status, inst.node_id) == ("completed", dst.id)


def test_a_failure_in_post_copy_ends_the_migration_in_error(session: Session) -> None:
    src, _, inst, record = _made(session)
    report(session, src, _sends(record, post_copy=True))
    report(session, src, _sends(record, post_copy=True, status="failed",
                                error="PostCopyFailed: the guest is lost"))
    assert (record.status, inst.node_id) == ("error", src.id)
    assert "guest is lost" in (record.message or "")


def test_a_destination_still_in_post_copy_when_its_source_is_lost_has_no_guest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its QEMU runs, but part of the guest's memory was on the source: not arrived."""
    from types import SimpleNamespace

    from atwill.agent.live_migrations import LiveMigrations

    deleted: list[str] = []
    driver = SimpleNamespace(pid=lambda uuid: 42, _status=lambda uuid: "running",
                             delete=deleted.append)
    lm = LiveMigrations(SimpleNamespace(driver=driver, lanes=None,  # type: ignore[arg-type]
                                        on_started=lambda: None))
    monkeypatch.setattr(lm, "_in_post_copy", lambda uuid: True)
    lm._settle_lost("i", 5)
    assert deleted == ["i"] and "post-copy" in lm.incoming["i"]["error"]
    monkeypatch.setattr(lm, "_in_post_copy", lambda uuid: False)
    lm.incoming.clear()
    lm._settle_lost("i", 5)
    assert lm.incoming["i"]["arrived"] is True and deleted == ["i"]


def test_an_abort_wins_over_the_timeout() -> None:
    qemu = PostCopyQemu()
    with pytest.raises(migration.Aborted):
        migration.send(qemu, lambda: _order(abort=True), lambda _: None, timeout=0,
                       keys=KEYS)
    assert "migrate-start-postcopy" not in qemu.names()
