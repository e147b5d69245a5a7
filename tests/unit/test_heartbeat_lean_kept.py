"""What a lean beat keeps per worker instead of computing per beat (issue 19): the
underlay source of an address answers as nodes.underlay_source under every overlay and
network, and the relay is the one relay_for gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from atwill.config import Settings
from atwill.controller.cluster import agents, nodes
from atwill.controller.metrics_relay import relay_for

ADDRESSES = ["100.72.0.2", "100.73.0.2", "::ffff:100.72.0.2", "10.9.0.1", "testclient", ""]


@pytest.mark.parametrize("overlay", ["wireguard", "openvpn", "none"])
@pytest.mark.parametrize("cidr", ["100.72.0.0/16", "10.9.0.0/24"])
def test_the_kept_source_is_underlay_source(tmp_path: Path, overlay: str, cidr: str) -> None:
    settings = Settings(state_dir=tmp_path, overlay=overlay, overlay_cidr=cidr)
    for _ in range(2):  # computed, then kept
        for address in ADDRESSES:
            assert agents._underlay_source(settings, address) \
                == nodes.underlay_source(settings, address), (overlay, cidr, address)


def test_a_full_table_of_sources_starts_again(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents, "SOURCES", 3)
    monkeypatch.setattr(agents, "_SOURCES", {})
    settings = Settings(state_dir=tmp_path)
    for index in range(10):
        assert agents._underlay_source(settings, f"100.72.0.{index}") == ""
        assert len(agents._SOURCES) <= 3
    moved = dataclasses.replace(settings, overlay_cidr="100.80.0.0/16")
    assert agents._underlay_source(moved, "100.72.0.9") == "100.72.0.9"


def test_the_kept_relay_is_relay_for(tmp_path: Path) -> None:
    for state in (tmp_path / "a", tmp_path / "b"):
        ctl = SimpleNamespace(settings=Settings(state_dir=state))
        assert agents._relay(ctl).directory == relay_for(ctl).directory  # type: ignore[arg-type]
