"""Draining a node (atwill node drain, the cluster API's drain and restore) between two
agent-less nodes whose small fake agents carry live migrations through (no QEMU here:
the lab test drains a node of real guests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.admin_api import admin_token
from tests.api.aggregate_nodes import wait_for
from tests.api.test_server_live_migration import Pair, migrating_pair
from tests.cloud import Cloud

NODES = "/cluster/v1/nodes"


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with migrating_pair(cloud, tmp_path_factory.mktemp("drain"), "drain") as made:
        yield made


def call(cloud: Cloud, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    with cloud.http(admin_token(cloud)) as client:  # one login per controller
        resp = client.request(method, path, **kw)
    return resp.status_code, resp.json()


def service(cloud: Cloud, host: str) -> dict[str, Any]:
    (found,) = cloud.openstack("compute", "service", "list", "--host", host, "--long",
                               "-f", "json")
    return found


def test_bad_drain_requests_are_refused_and_change_nothing(pair: Pair) -> None:
    cloud, a = pair.cloud, pair.a
    assert call(cloud, "POST", f"{NODES}/no-such-node/drain")[0] == 404
    assert call(cloud, "POST", f"{NODES}/no-such-node/restore")[0] == 404
    for body in ({"parallel": 0}, {"parallel": "x"}, {"paralel": 2}):
        status, answer = call(cloud, "POST", f"{NODES}/{a.name}/drain", json=body)
        assert status == 400, (body, answer)
    assert call(cloud, "GET", f"{NODES}/{a.name}")[1]["enabled"] is True


def test_drain_names_what_it_cannot_move_then_resumes_moves_all_and_restores(
        pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    servers = [pair.boot(a.name), pair.boot(a.name)]
    names = {pair.show(s)["name"] for s in servers}
    # With the only other node disabled, nothing can go: the CLI names both, and why.
    cloud.openstack("compute", "service", "set", "--disable", "--disable-reason", "maint",
                    b.name, "nova-compute")
    try:
        proc = cloud.atwill("node", "drain", a.name, "--timeout", "30", check=False)
    finally:
        cloud.openstack("compute", "service", "set", "--enable", b.name, "nova-compute")
    assert proc.returncode == 1, proc.stderr
    for name in names:
        assert name in proc.stderr
    assert "cold migration failed" in proc.stderr and "No valid host" in proc.stderr
    assert (service(cloud, a.name)["Status"], service(cloud, a.name)["Disabled Reason"]) \
        == ("disabled", "draining")
    assert {pair.show(s)["OS-EXT-SRV-ATTR:host"] for s in servers} == {a.name}
    # Through the API (the dashboard's button): it starts over, and both go live to b.
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/drain")
    assert status == 202 and view["draining"] is True and view["instances"] == 2
    done = wait_for(lambda: (v := call(cloud, "GET", f"{NODES}/{a.name}/drain")[1])[
        "finished"] and v["done"] == 2 and v, 30, "the drain to finish")
    assert (done["instances"], done["stuck"], done["moving"]) == (0, [], [])
    for server in servers:
        pair.wait_server(server, b.name)
        kinds = [(m["Type"], m["Status"]) for m in pair.migrations(server)]
        assert ("live-migration", "completed") in kinds
    # Again: nothing left, nothing started.
    before = sum(len(pair.migrations(s)) for s in servers)
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/drain")
    assert status == 202 and view["instances"] == 0
    wait_for(lambda: call(cloud, "GET", f"{NODES}/{a.name}/drain")[1]["finished"], 10,
             "the second drain to end")
    assert sum(len(pair.migrations(s)) for s in servers) == before
    status, view = call(cloud, "POST", f"{NODES}/{a.name}/restore")
    assert status == 200 and view["draining"] is False
    assert call(cloud, "GET", f"{NODES}/{a.name}")[1]["enabled"] is True


def test_a_node_drains_itself_with_its_own_certificate_before_it_leaves(pair: Pair) -> None:
    cloud, a, b = pair.cloud, pair.a, pair.b
    path = f"{NODES}/{a.id}/leave/drain"
    with cloud.http(cloud.token()) as client:  # a token is not the node's certificate
        assert client.post(path).status_code == 401
    with b.http() as client:  # nor is another node's
        assert client.post(path).status_code == 403
    assert call(cloud, "GET", f"{NODES}/{a.name}")[1]["enabled"] is True
    server = pair.boot(a.name)
    try:
        refused = cloud.atwill("node", "remove", a.name, check=False)  # stdin: no terminal
        assert refused.returncode == 1 and f"atwill node remove {a.name} --drain" in \
            refused.stderr.replace("\n", " "), refused.stderr
        with a.http() as client:
            started = client.post(path)
            assert started.status_code == 202 and started.json()["draining"] is True
            wait_for(lambda: client.get(path).json()["instances"] == 0, 30,
                     "the node's own drain")
        pair.wait_server(server, b.name)
    finally:
        call(cloud, "POST", f"{NODES}/{a.name}/restore")
        cloud.openstack("server", "delete", "--wait", server)
