"""Attaching and detaching a volume from the dashboard, from the volume's page and from
the instance's page, over plain HTTP: the forms reach Nova's os-volume_attachments and
the agent-less nodes carry the attachment through attaching, in-use, detaching and back
(as in test_server_volumes.py), checked on what the block-storage API then says."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api.dashboard_web import D, WebUser
from tests.api.test_server_image import FakeNode
from tests.api.test_volume_api import gone, show
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique


@dataclass
class Env:
    cloud: Cloud
    compute: FakeNode
    storage: StorageNode
    zone: str
    flavor: str
    image: str
    user: str
    reports: dict[str, Any] = field(default_factory=dict)

    def server(self) -> tuple[str, str]:
        name = unique("dvsrv")
        made = self.cloud.openstack(
            "server", "create", "--flavor", self.flavor, "--image", self.image,
            "--no-network", "--availability-zone", self.zone, name, "-f", "json",
            user=self.user)
        self.report(made["id"], {})
        return made["id"], name

    def report(self, server_id: str, volumes: dict[str, str]) -> None:
        """The compute node's report: the server running with these volumes."""
        self.reports[server_id] = {"state": "running", "volumes": volumes}
        self.compute.beat(self.reports)

    def volume(self) -> tuple[str, str]:
        name = unique("dvvol")
        vid = self.cloud.openstack("volume", "create", "--size", "1", name, "-f", "json",
                                   user=self.user)["id"]
        self.storage.converge()
        return vid, name

    def status(self, vid: str) -> str:
        return show(self.cloud, vid)["status"]

    def delete_server(self, server_id: str) -> None:
        self.cloud.openstack("server", "delete", server_id)
        self.reports.pop(server_id, None)
        self.compute.beat(self.reports)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("dashboard-volumes")
    zone = unique("dvaz")
    compute = FakeNode(cloud, tmp, zone)
    storage = StorageNode(cloud, tmp, "dvstor")
    storage.keep_beating()
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("dvflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("dvimg"),
                            "-f", "json")["id"]
    project, user = unique("dvproj"), unique("dvuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield Env(cloud, compute, storage, zone, flavor, image, user)
    finally:
        compute.remove()
        storage.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


@pytest.fixture
def web(env: Env) -> Iterator[WebUser]:
    user = WebUser(env.cloud)
    user.login_as(env.user)
    try:
        yield user
    finally:
        user.close()


def test_attach_on_the_volume_page_and_detach_on_the_instance_page(env: Env,
                                                                   web: WebUser) -> None:
    (server, server_name), (vid, vol_name) = env.server(), env.volume()
    try:
        page = web.client.get(f"{D}/volumes/{vid}")
        assert page.status_code == 200
        assert f'<option value="{server}">{server_name} (ACTIVE)</option>' in page.text
        assert web.post(f"/volumes/{vid}/attach", {"server": server},
                        csrf=None).status_code == 403
        unchosen = web.post(f"/volumes/{vid}/attach", {"server": ""})
        assert unchosen.status_code == 400 and "Choose an instance." in unchosen.text
        assert env.status(vid) == "available"
        made = web.post(f"/volumes/{vid}/attach", {"server": server})
        assert made.status_code == 303
        assert made.headers["location"] == f"{D}/volumes/{vid}"
        assert env.status(vid) == "attaching"
        env.storage.converge()
        env.report(server, {vid: "attached"})
        assert env.status(vid) == "in-use"
        page = web.client.get(f"{D}/volumes/{vid}")
        assert f'<dd id="attached">{server_name} (/dev/vdb)</dd>' in page.text
        assert f"Detach from {server_name}" in page.text
        assert 'id="a-server"' not in page.text  # in use: nothing more to attach to
        instance = web.client.get(f"{D}/instances/{server}")
        assert instance.status_code == 200
        assert f'aria-label="Detach volume {vol_name}"' in instance.text
        assert "on /dev/vdb" in instance.text
        detach = f"/instances/{server}/volumes/{vid}/detach"
        assert web.post(detach, {}, csrf="wrong-token").status_code == 403
        assert env.status(vid) == "in-use"
        gone_ = web.post(detach, {})
        assert gone_.status_code == 303
        assert gone_.headers["location"] == f"{D}/instances/{server}"
        assert env.status(vid) == "detaching"
        env.report(server, {})
        env.storage.converge()
        assert env.status(vid) == "available"
        assert "No volume attached." in web.client.get(f"{D}/instances/{server}").text
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_attach_on_the_instance_page_and_detach_on_the_volume_page(env: Env,
                                                                   web: WebUser) -> None:
    (server, server_name), (vid, vol_name) = env.server(), env.volume()
    try:
        instance = web.client.get(f"{D}/instances/{server}")
        assert f'<option value="{vid}">{vol_name} (1 GB)</option>' in instance.text
        unchosen = web.post(f"/instances/{server}/volumes", {"volume": ""})
        assert unchosen.status_code == 400 and "Choose a volume." in unchosen.text
        made = web.post(f"/instances/{server}/volumes", {"volume": vid})
        assert made.status_code == 303
        assert made.headers["location"] == f"{D}/instances/{server}"
        assert env.status(vid) == "attaching"
        env.storage.converge()
        env.report(server, {vid: "attached"})
        assert env.status(vid) == "in-use"
        assert f"Detach from {server_name}" in web.client.get(f"{D}/volumes/{vid}").text
        # In use: the instance page no longer offers it.
        assert f'<option value="{vid}">' not in web.client.get(f"{D}/instances/{server}").text
        again = web.post(f"/instances/{server}/volumes", {"volume": vid})
        assert again.status_code == 400 and "already attached" in again.text  # Nova's words
        assert web.post(f"/volumes/{vid}/detach", {"server": server},
                        csrf=None).status_code == 403
        assert env.status(vid) == "in-use"
        done = web.post(f"/volumes/{vid}/detach", {"server": server})
        assert done.status_code == 303 and done.headers["location"] == f"{D}/volumes/{vid}"
        assert env.status(vid) == "detaching"
        env.report(server, {})
        env.storage.converge()
        assert env.status(vid) == "available"
        assert '<dd id="attached">–</dd>' in web.client.get(f"{D}/volumes/{vid}").text
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_an_unknown_or_foreign_instance_takes_no_volume(env: Env, web: WebUser) -> None:
    vid, _name = env.volume()
    theirs = env.cloud.openstack(
        "server", "create", "--flavor", env.flavor, "--image", env.image, "--no-network",
        "--availability-zone", env.zone, unique("dvadmin"), "-f", "json")["id"]
    env.report(theirs, {})
    try:
        for server in (str(uuid.uuid4()), theirs):
            resp = web.post(f"/volumes/{vid}/attach", {"server": server})
            assert resp.status_code == 404 and "could not be found" in resp.text, server
        # The member's page does not offer the admin's instance either.
        assert theirs not in web.client.get(f"{D}/volumes/{vid}").text
        assert env.status(vid) == "available"
    finally:
        env.delete_server(theirs)
        gone(env.cloud, env.storage, vid)
