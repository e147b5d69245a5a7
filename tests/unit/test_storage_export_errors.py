"""The storage agent's export errors (reported as `export_errors`, which fail the attach
waiting for that export: controller/volume/attach_outcomes.py) last only while the export
is wanted: an export that never ran has no record for _revoke to drop, and its old error
would fail the next attach of that volume to that node at once."""

from __future__ import annotations

from pathlib import Path

from atwill.agent.storage.reconcile import StorageManager


class NoExports:
    def records(self) -> dict:
        return {}


def test_an_unwanted_exports_error_is_forgotten(tmp_path: Path) -> None:
    manager = StorageManager(tmp_path / "vols", tmp_path / "ca", tmp_path / "c", tmp_path / "k",
                             lambda source, dest: None)
    manager.exports = NoExports()  # type: ignore[assignment]
    manager._export_failed = {("v1", "a"): "cannot start", ("v1", "b"): "port taken",
                              ("v2", "a"): "gone"}
    manager._revoke({"v1": {"id": "v1", "exports": [{"node_id": "b", "client_cn": "nb"}]}})
    assert manager._export_failed == {("v1", "b"): "port taken"}
