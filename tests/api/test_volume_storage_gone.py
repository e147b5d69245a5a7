"""A storage node removed with `atwill node remove --force` while one of its volumes is
attached to a running server: the volume is in error on no node, its export gone with the
node (whose certificate is revoked). The server's node is no longer given the volume, with
the export it was plugged in with (it would keep reconnecting to an address nobody serves,
and a restart of the server would wait on it), so its agent unplugs it; the attachment
stays listed as Nova does until it is detached, and detaching it (or deleting the server)
leaves the volume in error, never "available": no node holds its data.

Agent-less nodes: the volume-plugging migrating pair and a storage node without an agent
(test_live_migration_volumes.volume_env)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.aggregate_nodes import wait_for
from tests.api.lockout_cloud import own_cloud
from tests.api.test_live_migration_volumes import Env, volume_env
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False)


def _drop(env: Env, vid: str) -> None:
    with env.cloud.http(env.cloud.token()) as client:
        client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}})
    env.converge()


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from volume_env(cloud, tmp_path_factory.mktemp("sg"), "sg", _drop)


def _show(cloud: Cloud, vid: str) -> dict:
    with cloud.http(cloud.token()) as client:
        resp = client.get(f"{V3}/volumes/{vid}")
    assert resp.status_code == 200, resp.text
    return resp.json()["volume"]


def _given(env: Env, server: str) -> list[str]:
    spec = env.spec(env.pair.a, server)
    assert spec is not None
    return [v["volume_id"] for v in spec.get("volumes") or []]


@pytest.mark.parametrize("end", ["detach", "delete"])
def test_an_attached_volume_of_a_removed_storage_node(env: Env, cloud: Cloud,
                                                      tmp_path: Path, end: str) -> None:
    other = StorageNode(cloud, tmp_path, "sggone", free_gb=1000)  # the roomiest: it takes it
    other.keep_beating()
    removed = False
    try:
        server = env.pair.boot(env.pair.a.name)
        vid = cloud.openstack("volume", "create", "--size", "1", unique("sgvol"), "-f",
                              "json")["id"]
        assert vid in other.wanted()
        wait_for(lambda: other.converge() and _show(cloud, vid)["status"] == "available",
                 30, "available")
        cloud.openstack("server", "add", "volume", server, vid)
        wait_for(lambda: other.converge() and _show(cloud, vid)["status"] == "in-use",
                 30, "in-use")
        assert _given(env, server) == [vid]

        other.remove()
        removed = True
        shown = _show(cloud, vid)
        assert shown["status"] == "error", shown  # its host still named, as Cinder's
        # The export is gone with its node: the server's node is not asked to keep it.
        assert _given(env, server) == []
        (listed,) = cloud.openstack("server", "volume", "list", server, "-f", "json")
        assert listed["Volume ID"] == vid  # Nova lists it until it is detached

        if end == "detach":
            cloud.openstack("server", "remove", "volume", server, vid)
            wait_for(lambda: not cloud.openstack("server", "volume", "list", server,
                                                 "-f", "json"), 30, "detached")
        else:
            cloud.openstack("server", "delete", "--wait", server)
        shown = _show(cloud, vid)
        assert shown["status"] == "error", shown  # not "available": no node has its data
        assert shown["attachments"] == []
        cloud.openstack("volume", "delete", vid)  # on no node: gone at once
        with cloud.http(cloud.token()) as client:
            assert client.get(f"{V3}/volumes/{vid}").status_code == 404
    finally:
        if not removed:
            other.remove()
