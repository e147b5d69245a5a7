"""A node's long-poll through the real cluster API: one that saw no change answers only
`{"revision": after, "unchanged": true}` (nothing built), an agent without its state
(after=-1) or with an older revision gets the whole state, and a node that joins appears
in every other node's peers at once (the fleet-wide list shared between builds,
cluster/fleet_lists.py, follows the join's bump)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud


def _peer_names(state: dict) -> set[str]:
    return {p["name"] for p in state["overlay"]["peers"]}


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[JoinedNode, JoinedNode]]:
    tmp = tmp_path_factory.mktemp("unchanged")
    first = JoinedNode(cloud, tmp, "unch")
    try:
        second = JoinedNode(cloud, tmp, "unch")
        try:
            yield first, second
        finally:
            second.remove()
    finally:
        first.remove()


def test_a_long_poll_that_saw_no_change_answers_unchanged(
        pair: tuple[JoinedNode, JoinedNode]) -> None:
    node = pair[0]
    full = node.desired()
    assert "unchanged" not in full and full["overlay"]["peers"]
    answer = node.desired(after=full["revision"], wait=0.5)
    assert answer == {"revision": full["revision"], "unchanged": True}


def test_a_restarted_agent_or_an_older_revision_gets_the_whole_state(
        pair: tuple[JoinedNode, JoinedNode]) -> None:
    node = pair[0]
    full = node.desired()
    again = node.desired(after=-1, wait=0.5)
    assert again["revision"] == full["revision"] and "unchanged" not in again
    assert again["node_id"] == node.id and again["overlay"]["peers"] == full["overlay"]["peers"]
    older = node.desired(after=full["revision"] - 1, wait=0.5)
    assert older["revision"] == full["revision"] and "unchanged" not in older
    assert older["overlay"] == full["overlay"]


def test_a_joined_node_appears_in_every_node_s_peers(
        cloud: Cloud, pair: tuple[JoinedNode, JoinedNode], tmp_path: Path) -> None:
    first, second = pair
    before = {n.id: n.desired() for n in pair}
    assert second.name in _peer_names(before[first.id])
    assert first.name in _peer_names(before[second.id])
    with ThreadPoolExecutor(2) as pool:  # both held at their revision, then woken
        held = {n.id: pool.submit(n.desired, before[n.id]["revision"], 15) for n in pair}
        joined = JoinedNode(cloud, tmp_path, "unch")
        try:
            woken = {k: f.result(30) for k, f in held.items()}
            for node in pair:
                assert "unchanged" not in woken[node.id]
                assert woken[node.id]["revision"] > before[node.id]["revision"]
                assert joined.name in _peer_names(woken[node.id])
            mine = joined.desired()
            assert {first.name, second.name} <= _peer_names(mine)
            assert joined.name not in _peer_names(mine)
        finally:
            joined.remove()
    for node in pair:  # and gone from them once removed
        assert joined.name not in _peer_names(node.desired())


def test_calls_without_the_certificate_are_refused_before_the_nodes_polls_wait(
        cloud: Cloud, pair: tuple[JoinedNode, JoinedNode]) -> None:
    """A flood of desired-state calls without a client certificate is a 401 each, refused
    before the long-polls' gate (cluster/desired_pace.py): a node's own call still answers
    promptly. (The unit test test_desired_pace.py shows the order; this, the real server.)"""
    node = pair[0]
    full = node.desired()

    def stranger(_: int) -> int:
        with cloud.http() as client:
            return client.get(f"/cluster/v1/nodes/{node.id}/desired",
                              params={"after": full["revision"], "wait": 20}).status_code

    with ThreadPoolExecutor(16) as pool:
        flood = [pool.submit(stranger, i) for i in range(64)]
        started = time.monotonic()
        mine = node.desired(after=-1, wait=5)
        took = time.monotonic() - started
        codes = {f.result(60) for f in flood}
    assert codes == {401}
    assert mine["revision"] >= full["revision"] and "unchanged" not in mine
    assert took < 5, took
