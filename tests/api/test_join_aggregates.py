"""Joining into host aggregates: `atwill join --aggregate`, tokens that carry aggregates.

Joins go through the real /cluster/v1/join API (agent-less) and through the real
`atwill join` command; tokens are made with the real `atwill token create`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.pki import make_key_and_csr
from tests.api.test_cluster import Node, wait_for
from tests.cloud import BIN, Cloud, CommandFailed, unique

V = "/compute/v2.1/os-aggregates"
INVENTORY = {"vcpus": 4, "memory_mb": 4096, "disk_gb": 20, "arch": "x86_64"}


class Aggregates:
    """Aggregates made by a test, emptied and deleted at its end."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud, self.made = cloud, []

    def make(self, zone: str | None = None) -> dict:
        body = {"name": unique("jagg")} | ({"availability_zone": zone} if zone else {})
        with self.cloud.http(self.cloud.token()) as client:
            resp = client.post(V, json={"aggregate": body})
        assert resp.status_code == 200, resp.text
        self.made.append(resp.json()["aggregate"])
        return resp.json()["aggregate"]

    def show(self, agg: dict) -> dict:
        with self.cloud.http(self.cloud.token()) as client:
            return client.get(f"{V}/{agg['id']}").json()["aggregate"]

    def cleanup(self) -> None:
        with self.cloud.http(self.cloud.token()) as client:
            for agg in self.made:
                for host in client.get(f"{V}/{agg['id']}").json()["aggregate"]["hosts"]:
                    client.post(f"{V}/{agg['id']}/action",
                                json={"remove_host": {"host": host}})
                assert client.delete(f"{V}/{agg['id']}").status_code == 200


@pytest.fixture
def aggs(cloud: Cloud) -> Iterator[Aggregates]:
    made = Aggregates(cloud)
    yield made
    made.cleanup()


@pytest.fixture
def joined(cloud: Cloud) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        cloud.atwill("node", "remove", name, "--force", check=False)


def token(cloud: Cloud, *args: str) -> dict:
    return json.loads(cloud.atwill("token", "create", "--json", *args).stdout)


def join(cloud: Cloud, secret: str, name: str, aggregates: list[str] | None = None):
    _, csr = make_key_and_csr(name)
    body = {"token": secret, "name": name, "csr": csr.decode(), "inventory": INVENTORY}
    if aggregates is not None:
        body["aggregates"] = aggregates
    with cloud.http() as client:
        return client.post("/cluster/v1/join", json=body)


def message(resp) -> str:
    """The error's text: the cluster API answers {"detail": …}, Nova {"badRequest": …}."""
    body = resp.json()
    return str(body.get("message") or body.get("detail") or body)


def node_zone(cloud: Cloud, name: str) -> str:
    listed = cloud.openstack("compute", "service", "list", "--host", name, "-f", "json")
    return listed[0]["Zone"]


def unchanging(cloud: Cloud) -> dict:
    # Other modules' test nodes may still beat; the node rows are checked by name instead.
    rows = cloud.db_snapshot()
    rows["nodes"] = sorted(row[1] for row in rows["nodes"])
    return rows


def test_a_token_carries_aggregates_and_the_join_adds_its_own(
        cloud: Cloud, aggs: Aggregates, joined: list[str]) -> None:
    zoned, plain, extra = aggs.make(zone=unique("az")), aggs.make(), aggs.make()
    made = token(cloud, "--aggregate", zoned["name"], "--aggregate", str(plain["id"]))
    assert made["aggregates"] == [zoned["name"], plain["name"]]
    listed = json.loads(cloud.atwill("token", "list", "--json").stdout)
    assert next(t for t in listed if t["id"] == made["id"])["aggregates"] == made["aggregates"]
    name = unique("jnode")
    resp = join(cloud, made["token"], name, [extra["name"]])
    assert resp.status_code == 201, resp.text
    joined.append(name)
    for agg in (zoned, plain, extra):
        assert aggs.show(agg)["hosts"] == [name]
    # The node's zone is its aggregates' from the moment it joined.
    assert node_zone(cloud, name) == zoned["availability_zone"]
    zones = cloud.openstack("availability", "zone", "list", "--compute", "--long",
                            "-f", "json")
    assert any(z["Zone Name"] == zoned["availability_zone"] and z["Host Name"] == name
               for z in zones)


def test_an_unknown_aggregate_refuses_the_join_and_changes_nothing(
        cloud: Cloud, aggs: Aggregates) -> None:
    agg = aggs.make()
    made = token(cloud, "--aggregate", agg["name"])
    before = unchanging(cloud)
    missing = unique("nosuch")
    resp = join(cloud, made["token"], unique("jnode"), [missing])
    assert resp.status_code == 400, resp.text
    assert f"no host aggregate named '{missing}'" in message(resp)
    # Not even the token's use is counted (join_tokens.uses is in the snapshot).
    assert unchanging(cloud) == before
    assert aggs.show(agg)["hosts"] == []


def test_two_zones_refuse_the_join_as_nova_refuses_the_host(
        cloud: Cloud, aggs: Aggregates, joined: list[str]) -> None:
    first, second = aggs.make(zone=unique("az")), aggs.make(zone=unique("az"))
    made = token(cloud, "--aggregate", first["name"])
    before = unchanging(cloud)
    resp = join(cloud, made["token"], unique("jnode"), [second["name"]])
    assert resp.status_code == 409, resp.text
    text = message(resp)
    assert "one availability zone only" in text
    assert first["availability_zone"] in text and second["availability_zone"] in text
    assert unchanging(cloud) == before
    # A node that rejoins keeps its aggregates: its old zone counts against a new one.
    name = unique("jnode")
    assert join(cloud, made["token"], name).status_code == 201
    joined.append(name)
    cloud.atwill("node", "remove", name, "--force")
    again = token(cloud)
    resp = join(cloud, again["token"], name, [second["name"]])
    assert resp.status_code == 409 and first["name"] in message(resp), resp.text
    assert aggs.show(second)["hosts"] == []


def test_token_create_refuses_unknown_or_conflicting_aggregates(
        cloud: Cloud, aggs: Aggregates) -> None:
    first, second = aggs.make(zone=unique("az")), aggs.make(zone=unique("az"))
    before = unchanging(cloud)
    missing = unique("nosuch")
    with pytest.raises(CommandFailed) as failed:
        token(cloud, "--aggregate", first["name"], "--aggregate", missing)
    assert f"Cannot create the join token: no host aggregate named '{missing}'" in str(
        failed.value)
    with pytest.raises(CommandFailed, match="one availability zone only"):
        token(cloud, "--aggregate", first["name"], "--aggregate", second["name"])
    with cloud.http(cloud.token()) as client:
        resp = client.post("/cluster/v1/tokens", json={"aggregates": [missing]})
        assert resp.status_code == 400 and missing in message(resp), resp.text
        resp = client.post("/cluster/v1/tokens", json={"aggregates": [""]})
        assert resp.status_code in (400, 422), resp.text
    assert unchanging(cloud) == before


def test_atwill_join_with_aggregate_options(cloud: Cloud, aggs: Aggregates,
                                            tmp_path: Path) -> None:
    agg, other = aggs.make(zone=unique("az")), aggs.make()
    made = token(cloud)
    refused = Node(cloud, tmp_path, unique("jnode"))
    code, output = join_cli(refused, made, [agg["name"], unique("nosuch")])
    assert code == 1 and "no host aggregate named" in output, output
    assert not (refused.dir / "pki").exists() and not (refused.dir / "agent.yaml").exists()
    node = Node(cloud, tmp_path, unique("jnode"))
    try:
        code, output = join_cli(node, made, [agg["name"], other["name"]], wait=True)
        assert code == 0, output
        assert aggs.show(agg)["hosts"] == [node.name] == aggs.show(other)["hosts"]
        assert node_zone(cloud, node.name) == agg["availability_zone"]
    finally:
        node.stop()
        cloud.atwill("node", "remove", node.name, "--force", check=False)


def join_cli(node: Node, made: dict, aggregates: list[str], wait: bool = False):
    """`atwill join … --aggregate NAME…` for the Node helper of test_cluster (its agent
    runs in the foreground until node.stop())."""
    cmd = [str(BIN / "atwill"), "join", made["url"], "--token", made["token"], "--ca-hash",
           made["ca_hash"], "--name", node.name, "--state-dir", str(node.dir),
           "--skip-prereqs", "--foreground"]
    cmd += [arg for name in aggregates for arg in ("--aggregate", name)]
    node.dir.mkdir(parents=True, exist_ok=True)
    with open(node.dir / "join.log", "ab") as log:
        node.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    if not wait:
        node.proc.wait(60)
        return node.proc.returncode, (node.dir / "join.log").read_text()
    wait_for(lambda: (node.dir / "agent.yaml").exists() or node.proc.poll() is not None,
             60, "join")
    return (0 if node.proc.poll() is None else 1), (node.dir / "join.log").read_text()
