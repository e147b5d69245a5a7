"""Each controller's own overlay peer in the registry (controller/controllers.py,
cluster/controller_peer.py) on both engines: written with the row, a change tells every
node, and the peers and failover list a node is given."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.config import Settings
from atwill.controller import controllers
from atwill.controller.cluster import controller_peer
from atwill.controller.db.base import Base
from atwill.controller.db.models import ClusterRevision, ControllerRecord, NodeRevision
from atwill.controller.db.session import Database
from atwill.controller.revision import node_revision

T0 = dt.datetime(2026, 12, 7, 0, 0, 0)


@dataclasses.dataclass
class FakeController:
    settings: Settings


@pytest.fixture
def registry(db: Database) -> Iterator[Database]:
    tables = [m.__table__ for m in (ControllerRecord, ClusterRevision, NodeRevision)]
    Base.metadata.create_all(db.engine, tables=tables)
    yield db


def _settings(tmp_path: Path, name: str, address: str = "") -> Settings:
    settings = Settings(state_dir=tmp_path / name, public_host=f"{name}.example",
                        port=8686, overlay="wireguard", overlay_address=address)
    controller_peer.ensure_key(settings.state_dir)
    return settings


def _everyone_at(db: Database) -> int:
    with db.session() as session:
        return node_revision(session, "any-node")


def test_two_controllers_are_two_peers_and_the_overlay_urls_come_first(
        registry: Database, tmp_path: Path) -> None:
    one = _settings(tmp_path, "ctl")
    two = _settings(tmp_path, "ctl2", "100.72.255.254")
    with registry.session() as session:
        controllers.register(session, one.public_url, T0, controller_peer.own_record(one))
        controllers.register(session, two.public_url, T0 + dt.timedelta(seconds=1),
                             controller_peer.own_record(two))
    for answering in (one, two):  # the same peers whoever answers
        with registry.session() as session:
            rows = controllers.live_rows(session, T0 + dt.timedelta(seconds=2))
            peers = controller_peer.controller_peers_of(FakeController(answering), rows)
        assert [(p["overlay_ip"], p["public_key"], p["endpoint"]) for p in peers] == [
            ("100.72.0.1", controller_peer.public_key(one.state_dir), "ctl.example:51820"),
            ("100.72.255.254", controller_peer.public_key(two.state_dir),
             "ctl2.example:51820")]
        assert [p["name"] for p in peers if p["name"] == "controller"] == ["controller"]
    with registry.session() as session:
        listed = controllers.listed(session, one, ["https://100.72.0.1:8686",
                                                   "https://100.72.255.254:8686"],
                                    [one.public_url, two.public_url])
    assert listed == ["https://100.72.0.1:8686", "https://100.72.255.254:8686",
                      "https://ctl.example:8686", "https://ctl2.example:8686"]


def test_a_changed_overlay_peer_tells_every_node(registry: Database, tmp_path: Path) -> None:
    one, two = _settings(tmp_path, "ctl"), _settings(tmp_path, "ctl2", "100.72.255.254")
    with registry.session() as session:
        controllers.register(session, one.public_url, T0, controller_peer.own_record(one))
        controllers.register(session, two.public_url, T0, controller_peer.own_record(two))
    before = _everyone_at(registry)
    with registry.session() as session:  # a refresh that changes nothing
        controllers.register(session, two.public_url, T0 + dt.timedelta(seconds=5),
                             controller_peer.own_record(two))
    assert _everyone_at(registry) == before
    (two.state_dir / "overlay" / "wg-private.key").unlink()  # a new key, within WINDOW
    controller_peer.ensure_key(two.state_dir)
    with registry.session() as session:
        controllers.register(session, two.public_url, T0 + dt.timedelta(seconds=10),
                             controller_peer.own_record(two))
        row = session.query(ControllerRecord).filter_by(public_url=two.public_url).one()
        assert row.overlay_key == controller_peer.public_key(two.state_dir)
    assert _everyone_at(registry) > before


def _clashing(registry: Database,
              tmp_path: Path) -> tuple[Settings, Settings, list[ControllerRecord]]:
    """ctl, then ctl2 configured with ctl's overlay address, both registered: (ctl's
    settings, ctl2's, the live rows after)."""
    one, clash = _settings(tmp_path, "ctl"), _settings(tmp_path, "ctl2", "100.72.0.1")
    with registry.session() as session:
        controllers.register(session, one.public_url, T0, controller_peer.own_record(one))
        controllers.register(session, clash.public_url, T0 + dt.timedelta(seconds=1),
                             controller_peer.own_record(clash))
        rows = controllers.live_rows(session, T0 + dt.timedelta(seconds=2))
    return one, clash, rows


def test_a_controller_on_a_taken_address_is_no_peer(registry: Database,
                                                    tmp_path: Path) -> None:
    """ctl2 configured (or handed) ctl's address: ctl, there first, keeps it everywhere."""
    one, clash, rows = _clashing(registry, tmp_path)
    peers = controller_peer.controller_peers_of(FakeController(clash), rows)
    assert [p["public_key"] for p in peers] == [controller_peer.public_key(one.state_dir)]


def test_an_added_controller_claims_a_free_address(registry: Database,
                                                   tmp_path: Path) -> None:
    one = _settings(tmp_path, "ctl")
    with registry.session() as session:
        controllers.register(session, one.public_url, T0, controller_peer.own_record(one))
    new = dataclasses.replace(one, database_url=registry.url)
    assert controller_peer.claim_address(new) == ("100.72.255.254", None)
    unreachable = dataclasses.replace(
        one, database_url=f"sqlite:///{tmp_path / 'none' / 'x.db'}",
        controller_urls="https://ctl.example:8686,https://ctl2.example:8686")
    address, warning = controller_peer.claim_address(unreachable)
    assert address == "100.72.255.254" and "controller_urls" in warning


def test_no_overlay_no_peer(registry: Database, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "x", overlay="none")
    assert controller_peer.own_record(settings)["overlay_key"] is None
    assert controller_peer.controller_peers_of(FakeController(settings), []) == []


def test_a_controller_on_a_taken_address_says_so_once(
        registry: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    one, clash, rows = _clashing(registry, tmp_path)
    controllers._said.clear()
    controllers.check_own_peer(FakeController(one), rows)
    assert "overlay address" not in caplog.text
    for _ in range(3):
        controllers.check_own_peer(FakeController(clash), rows)
    assert caplog.text.count("holds this controller's overlay address 100.72.0.1") == 1


def test_an_ipv6_controller_is_dialled_in_brackets(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "v6", public_host="fd00::2", overlay="wireguard")
    assert controller_peer.endpoint(settings) == "[fd00::2]:51820"
    assert controller_peer.endpoint(Settings(public_host="ctl.example")) == \
        "ctl.example:51820"
