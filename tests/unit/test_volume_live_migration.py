"""Live migration of a server's volumes, the pure and agent-side parts: the destination's
own key (core/volume_handover.py), the export admitting it in place and handed over on
the same port (agent/storage/exports.py), and the QMP steps with no local disk to mirror
(agent/hypervisor/migration.py). The API test and the lab test (test_ha.py) run it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor import migration
from atwill.agent.hypervisor.qmp import QMPError
from atwill.agent.storage import exports
from atwill.agent.storage.exports import Export, Exports, heir
from atwill.core import volume_handover as vh
from atwill.core.volume_devices import Volume
from atwill.core.volume_devices import device as device_args
from atwill.core.volume_devices import slot_of as vd_slot
from tests.unit.test_agent_migration_qmp import KEYS, ORDER, FakeMonitor, FakeQemu

ATT = "7d0c4b8a-2f8e-4b4e-9a53-0d6f5c1e2a3b"
VOL = "0b7c2a5e-1111-4222-8333-944455556666"
MIGRATION_KEY = "cd" * 32
SOURCE = f"atwill-att-{ATT}:{'ab' * 32}"


def test_the_destination_has_an_identity_and_key_of_its_own() -> None:
    psk = vh.destination_psk(MIGRATION_KEY, ATT, 12)
    assert psk["identity"] == f"atwill-att-{ATT}-lm12"
    assert re.fullmatch(r"[0-9a-f]{64}", psk["key"])
    # The same from the same migration (the controller recomputes it), not another's.
    assert vh.destination_psk(MIGRATION_KEY, ATT, 12) == psk
    assert vh.key("ef" * 32, ATT) != psk["key"] and vh.key(MIGRATION_KEY, VOL) != psk["key"]
    # A volume entry and an export line accept it as they are.
    Volume.from_desired({"volume_id": VOL, "host": "10.0.0.1", "port": 10809, "psk": psk})
    assert exports.psk_lines([vh.psk_line(psk)]) == (vh.psk_line(psk),)


def test_the_report_names_identities_never_keys() -> None:
    dest = vh.psk_line(vh.destination_psk(MIGRATION_KEY, ATT, 3))
    listed = vh.identities([SOURCE, dest])
    assert listed == sorted([f"atwill-att-{ATT}", f"atwill-att-{ATT}-lm3"])
    assert vh.admits({"port": 1, "identities": listed}, f"atwill-att-{ATT}-lm3")
    assert not vh.admits({"port": 1}, f"atwill-att-{ATT}-lm3")
    assert not vh.admits(None, f"atwill-att-{ATT}-lm3")


def test_only_an_export_admitting_every_new_key_is_handed_over() -> None:
    dest = vh.psk_line(vh.destination_psk(MIGRATION_KEY, ATT, 3))
    record = Export(VOL, "node-a", "a", "10.0.0.5", 10811, tuple(sorted([SOURCE, dest])))
    to_b = {"node_id": "node-b", "client_cn": "b", "psk": [dest]}
    assert heir(record, [to_b], {(VOL, "node-a")}) == to_b
    # Not a key it never admitted (a cold migration's new key: a new daemon), not none,
    # not a node already served by an export of its own.
    other = vh.psk_line(vh.destination_psk("ef" * 32, ATT, 4))
    assert heir(record, [{**to_b, "psk": [other]}], set()) is None
    assert heir(record, [{**to_b, "psk": None}], set()) is None
    assert heir(record, [to_b], {(VOL, "node-b")}) is None
    assert heir(record, [{**to_b, "psk": ["not a key"]}], set()) is None


def _served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            psk: tuple[str, ...]) -> tuple[Exports, Export, list[Export]]:
    """An Exports whose one export runs (as far as it can tell) with psk."""
    root = tmp_path / "exports"
    store = Exports(root, tmp_path / "ca", tmp_path / "cert", tmp_path / "key")
    export = Export(VOL, "node-a", "a", "127.0.0.1", 10811, psk)
    directory = store.directory(VOL, "node-a")
    (directory / "tls").mkdir(parents=True)
    (directory / "tls" / "keys.psk").write_text("".join(f"{k}\n" for k in psk))
    (directory / "export.json").write_text(json.dumps(
        {**export.__dict__, "psk": list(psk)}))
    started: list[Export] = []
    monkeypatch.setattr(store, "running", lambda e: 4242)
    monkeypatch.setattr(store, "_stale", lambda e: False)
    monkeypatch.setattr(store, "_start", lambda e, image: started.append(e))
    monkeypatch.setattr(store, "_child", lambda d: _Stopped())
    return store, export, started


class _Stopped:
    def stop(self) -> None:
        pass


def test_an_added_key_is_admitted_without_restarting_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's guest keeps its connection: GnuTLS reads keys.psk at each handshake."""
    store, export, started = _served(tmp_path, monkeypatch, (SOURCE,))
    dest = vh.psk_line(vh.destination_psk(MIGRATION_KEY, ATT, 3))
    both = tuple(sorted([SOURCE, dest]))
    got = store.ensure(VOL, "node-a", "a", "127.0.0.1", Path("/v.qcow2"), both)
    assert started == [] and got.psk == both and got.port == export.port
    tls = store.directory(VOL, "node-a") / "tls"
    assert (tls / "keys.psk").read_text() == "".join(f"{k}\n" for k in both)
    assert (tls / "keys.psk").stat().st_mode & 0o077 == 0
    assert store.records()[(VOL, "node-a")].psk == both
    # A key taken away restarts it (its holder may be connected: cut off).
    store.ensure(VOL, "node-a", "a", "127.0.0.1", Path("/v.qcow2"), (SOURCE,))
    assert [e.psk for e in started] == [(SOURCE,)]


def test_a_hand_over_restarts_the_export_on_its_port_for_the_new_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = vh.psk_line(vh.destination_psk(MIGRATION_KEY, ATT, 3))
    store, export, started = _served(tmp_path, monkeypatch, tuple(sorted([SOURCE, dest])))
    served = store.hand_over(store.records()[(VOL, "node-a")], "node-b", "b", (dest,),
                             Path("/v.qcow2"))
    assert started == [served]
    assert (served.node_id, served.client_cn, served.port, served.host, served.psk) == (
        "node-b", "b", export.port, export.host, (dest,))
    assert not store.directory(VOL, "node-a").exists()  # the source's is gone


def test_without_a_local_disk_only_the_memory_is_sent() -> None:
    qemu = FakeQemu()
    order = migration.Order(**{**ORDER.__dict__, "nbd_port": None})
    migration.send(qemu, lambda: order, lambda _: None, timeout=30, keys=KEYS)
    names = qemu.names()
    assert "blockdev-add" not in names and "blockdev-mirror" not in names
    assert names[:4] == ["object-add", "migrate-set-capabilities", "migrate-set-parameters",
                         "migrate"]


def test_a_local_disk_is_never_left_behind_unmirrored() -> None:
    """A destination that made no disk export for a guest that has a local disk: the
    migration fails on the source, which goes on as it was."""
    class WithDisk(FakeQemu):
        def __call__(self, command: str, arguments: Any = None) -> Any:
            if command == "query-block":
                self.calls.append((command, arguments))
                return [{"device": migration.DRIVE, "inserted": {"node-name": "n0"}}]
            return super().__call__(command, arguments)

    qemu = WithDisk()
    order = migration.Order(**{**ORDER.__dict__, "nbd_port": None})
    with pytest.raises(QMPError, match="no disk export"):
        migration.send(qemu, lambda: order, lambda _: None, timeout=30, keys=KEYS)
    assert "migrate" not in qemu.names() and qemu.status == "running"


def test_a_destination_without_a_local_disk_exports_nothing() -> None:
    qmp = FakeMonitor()
    migration.receive(qmp, "100.72.0.9", None, 49152, KEYS)  # type: ignore[arg-type]
    assert [c for c, _ in qmp.calls] == ["object-add", "migrate-set-parameters",
                                         "migrate-incoming"]


def test_the_key_file_may_be_for_a_user_without_a_disk(tmp_path: Path) -> None:
    keys = migration.key_directory(tmp_path, None, migration.Tls.of(
        {"username": "atwill-migration-3", "key": "ab" * 32}))
    assert (keys / "keys.psk").read_text() == f"atwill-migration-3:{'ab' * 32}\n"


@pytest.mark.parametrize(("device", "slot"), [
    ("/dev/vda", 0x10), ("/dev/vdb", 0x11), ("/dev/sdc", 0x12), ("/dev/vdo", 0x1e),
    ("/dev/vdp", None), ("/dev/vdaa", None), ("vdb", None), (None, None), (3, None)])
def test_a_volume_has_the_same_pci_slot_on_every_node(device: Any, slot: int | None) -> None:
    """Hot-plugged on the source (QEMU's next free slot), on the destination's command
    line before the NICs: without a fixed slot the layouts differed and the migration
    failed. QEMU's auto slots start at 2; q35 keeps 0x1f."""
    assert vd_slot(device) == slot
    volume = Volume.from_desired({"volume_id": VOL, "host": "10.0.0.1", "port": 10809,
                                  "device": device if isinstance(device, str) else None})
    args = device_args(volume)
    assert args.get("addr") == (None if slot is None else hex(slot))
    # Not part of its identity: a guest plugged before slots were fixed keeps its state.
    assert volume == Volume.from_desired({"volume_id": VOL, "host": "10.0.0.1",
                                          "port": 10809})
