"""A heartbeat or join that arrives through the overlay never becomes the node's endpoint.

With several controllers the agents call them at their overlay URLs first, so the
connection's source is the node's own overlay address; taken for its WireGuard endpoint,
every peer would dial the tunnel through itself (the two-controller lab's failovers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from atwill.api.cluster import Heartbeat
from atwill.config import Settings
from atwill.controller.cluster import agents, nodes
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Node
from atwill.controller.db.session import Database
from atwill.controller.revision import revision
from atwill.core import overlay

UNDERLAY = "192.0.2.10"


@pytest.fixture
def ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Controller]:
    db = Database(f"sqlite:///{tmp_path / 'beat.db'}")
    Base.metadata.create_all(db.engine)
    monkeypatch.setattr(agents, "calling_node",
                        lambda session, request, node_id: session.get(Node, node_id))
    with db.session() as session:
        session.add(Node(id="n1", name="node1", state="up", host_ip=UNDERLAY,
                         endpoint_host=UNDERLAY, overlay_port=51820, overlay_ip="100.72.0.2"))
    yield Controller(settings=Settings(state_dir=tmp_path, overlay="wireguard"),  # type: ignore[arg-type]
                     db=db, keys=None)
    db.dispose()


def _beat(ctl: Controller, source: str) -> tuple[str | None, str, int]:
    with ctl.db.session() as session:
        before = revision(session)
    request = SimpleNamespace(client=SimpleNamespace(host=source))
    agents._heartbeat(ctl, request, "n1", Heartbeat())  # type: ignore[arg-type]
    with ctl.db.session() as session:
        node = session.get(Node, "n1")
        return node.endpoint_host, node.host_ip, revision(session) - before


@pytest.mark.parametrize("source", ["100.72.0.2", "100.72.255.254", "::ffff:100.72.0.2"])
def test_a_heartbeat_through_the_overlay_changes_no_endpoint(ctl: Controller,
                                                             source: str) -> None:
    assert _beat(ctl, source) == (UNDERLAY, UNDERLAY, 0)


def test_a_heartbeat_from_a_new_underlay_address_moves_the_endpoint(ctl: Controller) -> None:
    assert _beat(ctl, "198.51.100.7") == ("198.51.100.7", "198.51.100.7", 1)


def test_without_an_overlay_every_source_is_the_underlay(tmp_path: Path) -> None:
    plain = Settings(state_dir=tmp_path, overlay="none")
    assert nodes.underlay_source(plain, "100.72.0.2") == "100.72.0.2"
    tunnel = dataclasses.replace(plain, overlay="wireguard")
    assert nodes.underlay_source(tunnel, "100.72.0.2") == ""
    assert nodes.underlay_source(tunnel, "100.73.0.2") == "100.73.0.2"
    assert nodes.underlay_source(tunnel, "testclient") == "testclient"


def test_within_the_overlay() -> None:
    assert overlay.within("100.72.0.0/16", "100.72.3.4")
    assert overlay.within("fd00:72::/64", "fd00:72::5")
    assert overlay.within("fd00:72::/64", "fd00:72::5%wg0")
    assert not overlay.within("100.72.0.0/16", "100.71.255.255")
    assert not overlay.within("fd00:72::/64", "100.72.0.1")
    assert not overlay.within("100.72.0.0/16", "")


def test_a_join_with_a_controllers_key_is_refused(ctl: Controller) -> None:
    from atwill.controller.db.controllers import ControllerRecord
    from atwill.core.errors import Conflict

    key = "k" * 43 + "="
    with ctl.db.session() as session:
        session.add(ControllerRecord(public_url="https://c2:8686", overlay_key=key))
    with ctl.db.session() as session, pytest.raises(Conflict, match="A controller of this"):
        nodes.register(session, ctl, "node0", "csr", key, 51820, {}, UNDERLAY)
    with ctl.db.session() as session:  # the rule is per key: another node's own passes it
        nodes.check_key_free(session, ctl, "node0", "j" * 43 + "=")
        session.get(Node, "n1").wireguard_public_key = "j" * 43 + "="
    with ctl.db.session() as session, pytest.raises(Conflict, match="Node node1 already"):
        nodes.check_key_free(session, ctl, "node0", "j" * 43 + "=")
    with ctl.db.session() as session:  # its own name again (a down node rejoining)
        nodes.check_key_free(session, ctl, "node1", "j" * 43 + "=")
