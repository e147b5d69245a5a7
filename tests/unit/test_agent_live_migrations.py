"""agent/live_migrations: which converges a migration takes over, and what is reported."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from atwill.agent.hypervisor.spec import InstancePaths
from atwill.agent.live_migrations import LiveMigrations


class FakeLanes:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []

    def submit(self, key: str, work: Any, *args: Any) -> bool:
        self.submitted.append((key, work.__name__))
        return True


def manager() -> SimpleNamespace:
    return SimpleNamespace(driver=SimpleNamespace(), lanes=FakeLanes(),
                           on_started=lambda: None)


ORDER = {"migration": 4, "host": "100.72.0.3", "nbd_port": 1, "port": 2, "downtime_ms": 300,
         "bandwidth": 0, "abort": False, "force_complete": False}


def test_a_sending_instance_is_never_converged_and_its_order_follows() -> None:
    m = manager()
    lm = LiveMigrations(m)  # type: ignore[arg-type]
    inst = {"id": "i", "migrate_to": ORDER}
    assert lm.handles(inst) and m.lanes.submitted == [("i", "_send")]
    lm.outgoing["i"] = {"migration": 4, "status": "running"}
    assert lm.handles({"id": "i", "migrate_to": {**ORDER, "abort": True}})
    assert m.lanes.submitted == [("i", "_send")]  # not sent twice
    assert lm._order("i", 4).abort and lm._order("i", 3).abort  # a stale one is aborted
    report: dict[str, Any] = {"i": {"state": "paused"}}
    lm.annotate(report)
    assert report["i"] == {"state": "paused", "migration": {"migration": 4,
                                                            "status": "running"}}
    # The guest moved: the controller lists it no more here; its migration is forgotten.
    lm.prune(set())
    assert lm.outgoing == {}


def test_a_received_instance_stops_its_export_once_it_is_ours() -> None:
    m = manager()
    lm = LiveMigrations(m)  # type: ignore[arg-type]
    inst = {"id": "i", "incoming": {"migration": 4, "listen": "100.72.0.3"}}
    assert lm.handles(inst) and m.lanes.submitted == [("i", "_receive")]
    lm.incoming["i"] = {"migration": 4, "nbd_port": 5, "port": 6}
    assert lm.handles(inst) and len(m.lanes.submitted) == 1
    assert lm.handles({"id": "i"})  # completed: it is this node's now
    assert m.lanes.submitted[-1] == ("i", "_arrived") and lm.incoming == {}
    assert not lm.handles({"id": "i"})  # from then on an instance like any other


def test_a_failed_preparation_is_reported_then_forgotten() -> None:
    lm = LiveMigrations(manager())  # type: ignore[arg-type]
    lm.incoming["i"] = {"migration": 4, "error": "RuntimeError: no room"}
    report: dict[str, Any] = {}
    lm.annotate(report)
    assert report == {"i": {"state": "paused", "incoming": lm.incoming["i"]}}
    assert not lm.handles({"id": "i"})  # failed: nothing to stop, converge as usual
    lm.incoming["j"] = {"migration": 5, "error": "x"}
    lm.prune({"i"})
    assert lm.incoming == {}


def test_the_destination_keeps_its_key_until_the_guest_arrived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GnuTLS reads a server's PSK file at each handshake (the mirror's, then the memory
    stream's): removed once the destination was prepared, the handshakes failed."""
    from atwill.agent import live_migrations as module

    paths = InstancePaths.under(tmp_path / "instances", tmp_path / "qmp", "i")
    paths.directory.mkdir(parents=True)
    paths.disk.write_bytes(b"")
    driver = SimpleNamespace(state=lambda uuid: "missing", paths=lambda uuid: paths,
                             pid=lambda uuid: None,
                             qmp_timeout=1.0)
    m = SimpleNamespace(driver=driver, lanes=FakeLanes(), on_started=lambda: None)
    lm = LiveMigrations(m)  # type: ignore[arg-type]
    monkeypatch.setattr(lm, "_incoming_spec", lambda inst: None)
    monkeypatch.setattr(lm, "_launch", lambda spec, console: None)
    monkeypatch.setattr(module, "free_ports", lambda host: [5, 6])
    monkeypatch.setattr(module, "QMP", lambda path, timeout: contextlib.nullcontext())
    monkeypatch.setattr(module, "receive", lambda *args, **kwargs: None)
    monkeypatch.setattr(module, "stop_serving", lambda execute: None)
    lm._receive({"id": "i", "incoming": {"migration": 4, "listen": "100.72.0.3",
                                         "tls": {"username": "atwill-migration-4",
                                                 "key": "ab" * 32}}})
    assert lm.incoming["i"] == {"migration": 4, "nbd_port": 5, "port": 6}
    key = paths.directory / "migration-tls" / "keys.psk"
    assert key.read_text() == f"atwill-migration-4:{'ab' * 32}\n"
    lm._arrived("i")
    assert not key.parent.exists()


def test_a_destination_still_loading_the_last_state_keeps_its_guest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source reports completed once it sent the last state; the QEMU here may still
    be in inmigrate, loading it. Taken for a copy that never arrived, it was deleted and
    the server booted anew from its image (a CI run saw a fresh console after a move)."""
    from atwill.agent import live_migrations as module

    paths = InstancePaths.under(tmp_path / "instances", tmp_path / "qmp", "i")
    states = iter(["inmigrate", "inmigrate", "running"])
    deleted: list[str] = []
    driver = SimpleNamespace(paths=lambda uuid: paths, pid=lambda uuid: 1, qmp_timeout=1.0,
                             _status=lambda uuid: next(states), delete=deleted.append)
    lm = LiveMigrations(SimpleNamespace(driver=driver))  # type: ignore[arg-type]
    monkeypatch.setattr(lm, "_in_post_copy", lambda uuid: False)
    stopped: list[str] = []
    monkeypatch.setattr(module, "connected", lambda path, timeout: "qmp")
    monkeypatch.setattr(module, "stop_serving", stopped.append)
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    lm._arrived("i")
    assert (deleted, stopped) == ([], ["qmp"])


def test_a_copy_that_stays_in_inmigrate_past_the_grace_is_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atwill.agent import live_migrations as module

    paths = InstancePaths.under(tmp_path / "instances", tmp_path / "qmp", "i")
    deleted: list[str] = []
    driver = SimpleNamespace(paths=lambda uuid: paths, pid=lambda uuid: 1, qmp_timeout=1.0,
                             _status=lambda uuid: "inmigrate", delete=deleted.append)
    lm = LiveMigrations(SimpleNamespace(driver=driver))  # type: ignore[arg-type]
    clock = iter(range(0, 100, 5))
    monkeypatch.setattr(module.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    lm._arrived("i")
    assert deleted == ["i"]
