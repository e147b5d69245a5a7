"""Host aggregates through the real CLI and the API: shapes, zones, refusals, policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud, CommandFailed, unique

V = "/compute/v2.1/os-aggregates"
CREATE_KEYS = {"availability_zone", "created_at", "deleted", "deleted_at", "id", "name",
               "updated_at"}
INFO_KEYS = CREATE_KEYS | {"hosts", "metadata"}


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def pair(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[JoinedNode]]:
    tmp: Path = tmp_path_factory.mktemp("agg-nodes")
    made = [JoinedNode(cloud, tmp, "aggnode"), JoinedNode(cloud, tmp, "aggnode")]
    try:
        yield made
    finally:
        for node in made:
            node.remove()


def zones(cloud: Cloud) -> dict[str, list[str]]:
    """Zone name -> its hosts, from the compute API's detailed listing."""
    with cloud.http(cloud.token()) as client:
        info = client.get("/compute/v2.1/os-availability-zone/detail").json()
    return {z["zoneName"]: sorted(z["hosts"] or {}) for z in info["availabilityZoneInfo"]}


def test_cli_lifecycle_and_zones(cloud: Cloud, pair: list[JoinedNode]) -> None:
    a, b = pair
    name, zone = unique("agg"), unique("az")
    made = cloud.openstack("aggregate", "create", "--zone", zone, "--property", "ssd=true",
                           name, "-f", "json")
    assert made["name"] == name and made["availability_zone"] == zone
    cloud.openstack("aggregate", "add", "host", name, a.name)
    shown = cloud.openstack("aggregate", "show", name, "-f", "json")
    assert shown["hosts"] == [a.name]
    assert shown["properties"] == {"ssd": "true"} or shown["properties"] == "ssd='true'"
    assert a.name in zones(cloud)[zone] and a.name not in zones(cloud).get("nova", [])
    assert b.name in zones(cloud)["nova"]
    listed = cloud.openstack("availability", "zone", "list",
                             "--compute", "-f", "json")
    assert zone in [z["Zone Name"] for z in listed]
    hypervisor_zone = cloud.openstack("compute", "service", "list", "--host", a.name,
                                      "-f", "json")[0]["Zone"]
    assert hypervisor_zone == zone
    cloud.openstack("aggregate", "set", "--property", "gpu=t4", name)
    cloud.openstack("aggregate", "unset", "--property", "ssd", name)
    assert cloud.openstack("aggregate", "show", name, "-f", "json")["properties"] in (
        {"gpu": "t4"}, "gpu='t4'")
    assert name in [g["Name"] for g in cloud.openstack("aggregate", "list", "-f", "json")]
    with pytest.raises(CommandFailed, match="not empty"):
        cloud.openstack("aggregate", "delete", name)
    cloud.openstack("aggregate", "remove", "host", name, a.name)
    assert a.name in zones(cloud)["nova"]
    cloud.openstack("aggregate", "delete", name)
    assert name not in [g["Name"] for g in cloud.openstack("aggregate", "list", "-f", "json")]


def test_shapes_by_microversion(cloud: Cloud, pair: list[JoinedNode]) -> None:
    name = unique("agg")
    with cloud.http(cloud.token()) as client:
        made = client.post(V, json={"aggregate": {"name": name}}, headers=mv("2.41"))
        assert made.status_code == 200, made.text
        body = made.json()["aggregate"]
        assert set(body) == CREATE_KEYS | {"uuid"} and body["availability_zone"] is None
        agg = body["id"]
        old = client.get(f"{V}/{agg}").json()["aggregate"]
        assert set(old) == INFO_KEYS and old["hosts"] == [] and old["metadata"] == {}
        added = client.post(f"{V}/{agg}/action", json={"add_host": {"host": pair[1].name}},
                            headers=mv("2.41")).json()["aggregate"]
        assert set(added) == INFO_KEYS | {"uuid"} and added["hosts"] == [pair[1].name]
        updated = client.put(f"{V}/{agg}", json={"aggregate": {"name": name + "x"}}).json()
        assert updated["aggregate"]["updated_at"] and updated["aggregate"]["name"] == name + "x"
        listed = client.get(V, headers=mv("2.41")).json()["aggregates"]
        assert [a["uuid"] for a in listed if a["id"] == agg] == [body["uuid"]]
        client.post(f"{V}/{agg}/action", json={"remove_host": {"host": pair[1].name}})
        gone = client.delete(f"{V}/{agg}")
        assert gone.status_code == 200 and gone.content == b""
        assert client.get(f"{V}/{agg}").status_code == 404


def test_refusals_change_nothing(cloud: Cloud, pair: list[JoinedNode]) -> None:
    a, b = pair
    name, other = unique("agg"), unique("agg")
    with cloud.http(cloud.token()) as client:
        first = client.post(V, json={"aggregate": {"name": name, "availability_zone": "z1"}})
        agg = first.json()["aggregate"]["id"]
        second = client.post(V, json={"aggregate": {"name": other, "availability_zone": "z2"}})
        agg2 = second.json()["aggregate"]["id"]
        client.post(f"{V}/{agg}/action", json={"add_host": {"host": a.name}})
        before = _settled(cloud.db_snapshot())
        cases = [
            (client.post(V, json={"aggregate": {"name": name}}), 409, "already exists"),
            (client.post(V, json={"aggregate": {"name": "x", "availability_zone": "a:b"}}),
             400, "availability_zone"),
            (client.post(V, json={"aggregate": {"name": "x", "colour": "red"}}), 400,
             "colour"),
            (client.post(f"{V}/{agg}/action", json={"add_host": {"host": "no-such-host"}}),
             404, "Compute host no-such-host could not be found."),
            (client.post(f"{V}/{agg}/action", json={"add_host": {"host": a.name}}), 409,
             f"Aggregate {agg} already has host {a.name}."),
            (client.post(f"{V}/{agg2}/action", json={"add_host": {"host": a.name}}), 400,
             f"Cannot add host to aggregate {agg2}. Reason: One or more hosts already in "
             "availability zone(s) ['z1']."),
            (client.post(f"{V}/{agg2}/action", json={"remove_host": {"host": a.name}}), 404,
             f"Aggregate {agg2} has no host {a.name}."),
            (client.post(f"{V}/{agg}/action", json={"set_metadata": {"metadata": {
                "availability_zone": None}}}), 400, "empty named availability zone"),
            (client.post(f"{V}/{agg}/action", json={"explode": {}}), 400, "exactly one"),
            (client.put(f"{V}/{agg2}", json={"aggregate": {"name": name}}), 409,
             "already exists"),
            (client.delete(f"{V}/{agg}"), 400, "Host aggregate is not empty"),
            (client.get(f"{V}/{name}"), 404, "could not be found"),
            (client.get(f"{V}/99999999"), 404, "could not be found"),
        ]
        for resp, status, text in cases:
            assert resp.status_code == status, resp.text
            assert text in next(iter(resp.json().values()))["message"], resp.text
        assert _settled(cloud.db_snapshot()) == before
        # Metadata null unsets; a host may be in a second aggregate of the same zone.
        meta = client.post(f"{V}/{agg2}/action", json={"set_metadata": {"metadata": {
            "k": "v", "availability_zone": "z1"}}}).json()["aggregate"]["metadata"]
        assert meta == {"k": "v", "availability_zone": "z1"}
        assert client.post(f"{V}/{agg2}/action", json={"add_host": {"host": a.name}}
                           ).status_code == 200
        # Moving one of its aggregates to another zone would put the host in two: refused.
        for moved in (client.put(f"{V}/{agg2}", json={"aggregate": {
                "availability_zone": "z9"}}),
                client.post(f"{V}/{agg2}/action", json={"set_metadata": {"metadata": {
                    "availability_zone": "z9"}}})):
            assert moved.status_code == 400, moved.text
            assert "already in availability zone(s) ['z1']" in moved.text, moved.text
        assert a.name in zones(cloud)["z1"] and "z9" not in zones(cloud)
        unset = client.post(f"{V}/{agg2}/action", json={"set_metadata": {"metadata": {
            "k": None}}}).json()["aggregate"]
        assert unset["metadata"] == {"availability_zone": "z1"} and unset["hosts"] == [a.name]
        for ident in (agg, agg2):
            client.post(f"{V}/{ident}/action", json={"remove_host": {"host": a.name}})
            assert client.delete(f"{V}/{ident}").status_code == 200
    assert b.name in zones(cloud)["nova"] and a.name in zones(cloud)["nova"]


def test_only_admins(cloud: Cloud) -> None:
    project, user = unique("aggproj"), unique("agguser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        with cloud.http(cloud.token(user)) as client:
            for method, path, body in (("GET", V, None), ("GET", f"{V}/1", None),
                                       ("POST", V, {"aggregate": {"name": "x"}}),
                                       ("PUT", f"{V}/1", {"aggregate": {"name": "x"}}),
                                       ("DELETE", f"{V}/1", None),
                                       ("POST", f"{V}/1/action",
                                        {"add_host": {"host": "h"}})):
                resp = client.request(method, path, json=body)
                assert resp.status_code == 403, (method, path, resp.text)
    finally:
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def _settled(snapshot: dict) -> dict:
    """The rows a refused request could change: not what the HA monitor writes on its own
    meanwhile (fence events, the revision, the nodes' health) about a test node gone quiet."""
    return {k: v for k, v in snapshot.items()
            if k not in ("fence_events", "cluster_revision", "nodes")}
