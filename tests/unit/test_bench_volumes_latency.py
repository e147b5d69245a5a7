"""atwill bench volumes --latency: the pieces that need no QEMU."""

from __future__ import annotations

from typer.testing import CliRunner

from atwill.bench import volumes_latency as vl
from atwill.cli.main import app
from atwill.core import volume_devices as vd


def test_each_round_plugs_a_device_and_slot_of_its_own() -> None:
    # QEMU's names keep only the id's first digits: ids differing at the end collided.
    ids = [vl._volume_id(i) for i in range(vl.SLOTS)]
    assert len({vd.device_id(v) for v in ids}) == vl.SLOTS
    assert len({vd.node_name(v) for v in ids}) == vl.SLOTS
    slots = {vd.slot_of(f"/dev/vd{'bcdefghijklmno'[i]}") for i in range(vl.SLOTS)}
    assert len(slots) == vl.SLOTS and None not in slots


def test_stats() -> None:
    assert vl._stats([0.3, 0.1, 0.2]) == {"min": 0.1, "median": 0.2, "max": 0.3}


def test_the_cli_offers_it() -> None:
    result = CliRunner().invoke(app, ["bench", "volumes", "--help"])
    assert result.exit_code == 0 and "--latency" in result.output
