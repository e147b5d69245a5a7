"""Fence devices and fencing through the real CLI and the cluster API, with the real
fence_ipmilan against the lab's virtual BMC (memory-only here: nothing is powered off)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.lab import bmc
from tests.api.test_cluster import Node, token
from tests.cloud import Cloud, free_port, unique

pytestmark = pytest.mark.skipif(shutil.which("fence_ipmilan", path="/usr/sbin:/sbin") is None,
                                reason="fence-agents is not installed (scripts/install)")


@pytest.fixture
def joined(cloud: Cloud, tmp_path: Path) -> Iterator[Node]:
    node = Node(cloud, tmp_path, unique("fn"))
    node.join(token(cloud))
    yield node
    node.stop()
    cloud.atwill("node", "fence", "remove", node.name, check=False)
    cloud.atwill("node", "remove", node.name, "--force", check=False)


@pytest.fixture
def virtual_bmc(tmp_path: Path) -> Iterator[tuple[int, str]]:
    port = free_port()
    proc = subprocess.Popen(bmc.command("--memory", "--dir", str(tmp_path), "--address",
                                        "127.0.0.1", "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (tmp_path / "bmc-password").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port, bmc.password(tmp_path)
    finally:
        proc.terminate()
        proc.wait(10)


def fence(cloud: Cloud, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return cloud.atwill("node", "fence", *args, check=check)


def test_set_show_test_and_off_with_fence_ipmilan(cloud: Cloud, joined: Node,
                                                   virtual_bmc: tuple[int, str]) -> None:
    port, password = virtual_bmc
    fence(cloud, "set", joined.name, "--agent", "fence_ipmilan", "--option", "ip=127.0.0.1",
          "--option", f"ipport={port}", "--option", f"username={bmc.USERNAME}",
          "--option", f"password={password}", "--option", "lanplus=1")
    shown = json.loads(fence(cloud, "show", joined.name).stdout)
    (device,) = shown["devices"]
    assert device["options"]["password"] == "******" and device["options"]["ip"] == "127.0.0.1"
    assert password not in cloud.db_snapshot().__repr__()
    tested = json.loads(fence(cloud, "test", joined.name).stdout)
    assert [(r["ok"], r["power"]) for r in tested] == [(True, "on")]
    with cloud.http(cloud.token()) as client:
        base = f"/cluster/v1/nodes/{joined.name}/fence"
        assert client.get("/cluster/v1/fence-devices").json()[0]["options"]["password"] == (
            "******")
        # The node still heartbeats: confirming it off by hand is refused.
        refused = client.post(f"{base}/confirm")
        assert refused.status_code == 409 and "heartbeats" in refused.text
        result = client.post(f"{base}/off").json()
        assert result["ok"] and result["method"] == "fence_ipmilan", result
        state = client.get(base).json()
    assert state["fence_state"] == "ok" and state["fenced_at"]
    assert [h["action"] for h in state["history"][:2]] == ["off", "status"]
    again = json.loads(fence(cloud, "test", joined.name).stdout)
    assert again[0]["power"] == "off"
    assert password not in json.dumps(state) + cloud.log()


def test_a_wrong_password_fails_without_showing_it(cloud: Cloud, joined: Node,
                                                    virtual_bmc: tuple[int, str]) -> None:
    port, _ = virtual_bmc
    fence(cloud, "set", joined.name, "--agent", "fence_ipmilan", "--option", "ip=127.0.0.1",
          "--option", f"ipport={port}", "--option", "username=admin", "--option",
          "password=WrongPassword42", "--option", "lanplus=1", "--timeout", "30")
    failed = fence(cloud, "off", joined.name, check=False)
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert not result["ok"] and "every fencing level failed" in result["message"]
    shown = fence(cloud, "show", joined.name).stdout
    assert json.loads(shown)["fence_state"] == "failed"
    assert "WrongPassword42" not in shown + failed.stdout + failed.stderr


def test_admin_only_and_bad_input_changes_nothing(cloud: Cloud, joined: Node) -> None:
    project, user = unique("p"), unique("u")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-x12345", user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-x12345", project)
    try:
        refused_to_members(cloud, user, joined.name)
    finally:
        cloud.openstack("user", "delete", user, parse=False)
        cloud.openstack("project", "delete", project, parse=False)
    bad_bodies_change_nothing(cloud, joined.name)
    missing = fence(cloud, "test", joined.name, check=False)
    assert missing.returncode == 1 and "no fence device" in missing.stderr


def refused_to_members(cloud: Cloud, user: str, node: str) -> None:
    base = f"/cluster/v1/nodes/{node}/fence"
    with cloud.http(cloud.token(user)) as client:
        assert client.get(base).status_code == 403
        assert client.put(f"{base}/devices/bmc", json={"agent": "fence_ipmilan"}
                          ).status_code == 403
        assert client.post(f"{base}/off").status_code == 403


def fence_rows(cloud: Cloud) -> dict:
    return {k: v for k, v in cloud.db_snapshot().items() if k.startswith("fence_")}


def bad_bodies_change_nothing(cloud: Cloud, node: str) -> None:
    base = f"/cluster/v1/nodes/{node}/fence"
    before = fence_rows(cloud)
    with cloud.http(cloud.token()) as client:
        for body in ({"agent": "/bin/sh"}, {"agent": "fence_x", "options": {"action": "on"}},
                     {"agent": "fence_x", "options": {"ip": "1\nport=9"}},
                     {"agent": "fence_x", "level": 0}, {"agent": "fence_x", "extra": 1},
                     {"agent": "fence_x", "timeout": 100000}):
            resp = client.put(f"{base}/devices/bmc", json=body)
            assert resp.status_code == 400, (body, resp.text)
        assert client.put(f"/cluster/v1/nodes/{unique('nope')}/fence/devices/bmc",
                          json={"agent": "fence_ipmilan"}).status_code == 404
        assert client.delete(f"{base}/devices/none").status_code == 404
    assert fence_rows(cloud) == before
