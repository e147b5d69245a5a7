"""Controllers register themselves in the shared database (controller/controllers.py): a
joined node's desired state lists every live one, a controller registered later reaches
the node's open long-poll (and its agent.yaml), and one gone leaves the list.

The second controller is a stand-in: its row is written as its own leader would write it,
through the same function, in the cloud's database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from atwill.agent.config import AgentConfig
from atwill.controller import controllers
from atwill.controller.db.base import utcnow
from atwill.controller.db.models import ControllerRecord
from atwill.controller.db.session import Database
from tests.api.aggregate_nodes import JoinedNode, wait_for
from tests.cloud import Cloud, unique


@pytest.fixture(scope="module")
def node(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JoinedNode]:
    joined = JoinedNode(cloud, tmp_path_factory.mktemp("ctlreg"), "ctlreg")
    try:
        yield joined
    finally:
        joined.remove()


@pytest.fixture(scope="module")
def db(cloud: Cloud) -> Iterator[Database]:
    database = Database(cloud.db_url())
    try:
        yield database
    finally:
        database.dispose()


def _registered(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(ControllerRecord.public_url)))


def test_the_controller_registers_itself_and_its_nodes_list_it(
        cloud: Cloud, node: JoinedNode, db: Database) -> None:
    wait_for(lambda: cloud.url in _registered(db), 15, "the controller's own row")
    with db.session() as session:
        row = session.scalar(select(ControllerRecord).where(
            ControllerRecord.public_url == cloud.url))
        assert row is not None and row.started_at <= row.last_seen
        first_seen = row.last_seen
    assert cloud.url in node.desired()["controllers"]
    # Refreshed while it runs (every REFRESH seconds).
    wait_for(lambda: _last_seen(db, cloud.url) > first_seen, 3 * controllers.REFRESH,
             "a refresh of the controller's row")


def _last_seen(db: Database, url: str) -> dt.datetime:
    with db.session() as session:
        return session.scalar(select(ControllerRecord.last_seen).where(
            ControllerRecord.public_url == url))


def test_a_controller_added_later_reaches_the_node_and_leaves_when_gone(
        cloud: Cloud, node: JoinedNode, db: Database, tmp_path: Path) -> None:
    second = f"https://{unique('ctl2')}.example:8686"
    before = node.desired()
    assert second not in before["controllers"]
    agent = AgentConfig(state_dir=tmp_path, controller_url=cloud.url, node_id=node.id,
                        name=node.name)
    agent.save()
    try:
        with db.session() as session:
            assert controllers.register(session, second)
        # The node's long-poll, held at its revision, is woken with the new list.
        woken = node.desired(after=before["revision"], wait=15)
        assert woken["revision"] > before["revision"]
        assert cloud.url in woken["controllers"] and second in woken["controllers"]
        agent.cache_desired(woken)
        assert second in AgentConfig.load(tmp_path).controller_urls
    finally:
        with db.session() as session:
            controllers.deregister(session, second)
    gone = node.desired(after=woken["revision"], wait=15)
    assert second not in gone["controllers"] and cloud.url in gone["controllers"]


def test_a_controller_silent_past_the_window_is_not_listed_and_swept(
        node: JoinedNode, db: Database) -> None:
    stale = f"https://{unique('ctl3')}.example:8686"
    with db.session() as session:
        controllers.register(session, stale,
                             utcnow() - controllers.WINDOW - dt.timedelta(seconds=5))
    assert stale in _registered(db)
    assert stale not in node.desired()["controllers"]
    # The running controller's next refresh removes the row.
    wait_for(lambda: stale not in _registered(db), 3 * controllers.REFRESH,
             "the stale row swept by the controller")
