"""A rebuilt instance's user differs from its old copy's on another node (lab hosts share
one process table, and removing the old copy kills its user's processes)."""

from __future__ import annotations

from pathlib import Path

from atwill.agent.hypervisor import confine
from atwill.core import guest_ids

UUID = "0b7c6a52-2a4c-4e8e-9d3b-5f4f0c1d2e3f"


def test_the_same_instance_gets_another_user_on_another_node(tmp_path: Path) -> None:
    first, second = tmp_path / "node-a" / "instances", tmp_path / "node-b" / "instances"
    for directory in (first, second):
        directory.mkdir(parents=True)
    uid_a = confine.instance_uid(UUID, first / UUID / "disk.qcow2", first)
    uid_b = confine.instance_uid(UUID, second / UUID / "disk.qcow2", second)
    assert guest_ids.in_block(uid_a) and guest_ids.in_block(uid_b)
    assert uid_a != uid_b
    assert confine.instance_uid(UUID, first / UUID / "disk.qcow2", first) == uid_a  # stable
