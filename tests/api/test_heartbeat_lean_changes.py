"""A lean heartbeat (cluster/liveness.py) is only one whose full pass would change
nothing: a report that is the same as the last one processed still goes the full way once
the controller expects something else of it. Here a storage node's volume is
force-deleted while the node already reports it absent (its file lost): the node's very
next beat, with the same report, removes the row, as the full path always did (before,
that beat was answered lean from memory and the volume stayed 'deleting': test_volume_
capacity's and test_volume_services' cleanups failed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.controller.cluster.liveness import FLUSH
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"


@pytest.fixture()
def node(cloud: Cloud, tmp_path: Path) -> Iterator[StorageNode]:
    made = StorageNode(cloud, tmp_path, "leanv")
    try:
        yield made
    finally:
        made.remove()


def settle(node: StorageNode, volumes: dict) -> None:
    """The same report a few times across flushes: the later beats are lean."""
    for _ in range(3):
        node.report(volumes)
        time.sleep(1.5 * FLUSH)


def test_a_volume_force_deleted_while_reported_absent_goes_at_the_next_beat(
        cloud: Cloud, node: StorageNode) -> None:
    with cloud.http(cloud.token()) as client:
        made = client.post(f"{V3}/volumes", json={"volume": {
            "size": 1, "name": unique("lean")}})
        assert made.status_code == 202, made.text
        vid = made.json()["volume"]["id"]
        try:
            assert vid in node.wanted()
            node.converge()  # the node made it: available
            assert client.get(f"{V3}/volumes/{vid}").json()["volume"]["status"] == \
                "available"
            settle(node, {})  # its file lost: the node reports nothing, nothing moves
            assert client.get(f"{V3}/volumes/{vid}").json()["volume"]["status"] == \
                "available"
            forced = client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            assert forced.status_code == 202, forced.text
            node.report({})  # the same report as the last beats', at once
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404
        finally:
            client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
            node.report({})
            time.sleep(2 * FLUSH)
            node.report({})
