"""The relayed instance counters kept as one file per node, shared by the controller's
worker processes (controller/metrics_relay.FileRelay)."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

from atwill.controller.metrics_relay import FileRelay, file_name


def test_each_nodes_latest_report_is_one_private_file_any_relay_reads(tmp_path: Path) -> None:
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    writer, reader = FileRelay(tmp_path / "relay"), FileRelay(tmp_path / "relay")
    writer.record(one, {"a": {"metrics": {"cpu_seconds": 1}}, "b": {"state": "running"}})
    writer.record(two, {"c": {"metrics": {"cpu_seconds": 2}}})
    assert reader.of(one) == {"a": {"cpu_seconds": 1}}
    writer.record(one, {"d": {"metrics": {"net_tx_bytes": 5}}})
    assert reader.of(one) == {"d": {"net_tx_bytes": 5}}
    assert sorted(os.listdir(tmp_path / "relay")) == sorted([one, two])  # no temp left
    assert stat.S_IMODE((tmp_path / "relay" / one).stat().st_mode) == 0o600
    reader.retain([one])
    assert writer.of(two) == {} and writer.of(one) != {}
    assert os.listdir(tmp_path / "relay") == [one]


def test_a_node_without_counters_writes_nothing_and_ids_are_uuids_only(
        tmp_path: Path) -> None:
    relay = FileRelay(tmp_path / "relay")
    relay.record(str(uuid.uuid4()), {"a": {"state": "running"}})
    assert not (tmp_path / "relay").exists()
    for bad in ("../../etc/passwd", "n1", str(uuid.uuid4()).upper(), ""):
        assert file_name(bad) is None
        relay.record(bad, {"a": {"metrics": {"cpu_seconds": 1}}})
        assert relay.of(bad) == {}
    assert not (tmp_path / "relay").exists()
    relay.retain([])  # no directory yet: nothing to forget


def test_a_damaged_file_reads_as_no_report(tmp_path: Path) -> None:
    node = str(uuid.uuid4())
    relay = FileRelay(tmp_path)
    (tmp_path / node).write_text("{not json")
    assert relay.of(node) == {}
    (tmp_path / node).write_text("[1]")
    assert relay.of(node) == {}
