"""A storage node's cinder-volume service is enabled and disabled on its own (Block Storage
PUT os-services/{enable,disable,disable-log-reason}), apart from its nova-compute service:
the real CLI sets and lists it, placement follows it, bad bodies change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.test_compute_nonadmin import make_user
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique

V3 = "/volume/v3"
MV = {"OpenStack-API-Version": "volume 3.44"}


@pytest.fixture(scope="module")
def nodes(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[StorageNode, StorageNode]]:
    """Two storage nodes; the first has the most room, so it takes new volumes first."""
    tmp = tmp_path_factory.mktemp("vol-services")
    roomy = StorageNode(cloud, tmp, "vsa", free_gb=60)
    small = StorageNode(cloud, tmp, "vsb", free_gb=30)
    for node in (roomy, small):
        node.keep_beating()
    try:
        yield roomy, small
    finally:
        roomy.remove()
        small.remove()


def volume_services(cloud: Cloud) -> dict[str, dict]:
    """cinder-volume services by host, from the real CLI (--long adds the reason)."""
    rows = cloud.openstack("volume", "service", "list", "--long", "-f", "json")
    return {r["Host"]: r for r in rows if r["Binary"] == "cinder-volume"}


def compute_service(cloud: Cloud, host: str) -> dict:
    rows = cloud.openstack("compute", "service", "list", "--long", "--host", host, "-f", "json")
    (row,) = [r for r in rows if r["Binary"] == "nova-compute"]
    return row


def create(cloud: Cloud, size: int = 1, **extra: str) -> dict:
    args = [arg for key, value in extra.items() for arg in (f"--{key}", value)]
    return cloud.openstack("volume", "create", "--size", str(size), *args, unique("vs"),
                           "-f", "json")


def gone(cloud: Cloud, volume_id: str, *holders: StorageNode) -> None:
    """Force-delete, and the node that held it reports it off its disk: the row goes."""
    with cloud.http(cloud.token()) as client:
        forced = client.post(f"{V3}/volumes/{volume_id}/action", json={"os-force_delete": {}})
        assert forced.status_code in (202, 404), forced.text
        for node in holders:
            node.converge()
        assert client.get(f"{V3}/volumes/{volume_id}").status_code == 404


def test_compute_and_volume_services_are_apart(cloud: Cloud,
                                                nodes: tuple[StorageNode, StorageNode]) -> None:
    roomy, small = nodes
    host = f"{roomy.name}@atwill"
    made: list[str] = []
    try:
        # Disabling nova-compute leaves the node's cinder-volume enabled: volumes still go there.
        cloud.openstack("compute", "service", "set", "--disable", "--disable-reason", "kernel",
                        roomy.name, "nova-compute")
        assert compute_service(cloud, roomy.name)["Status"] == "disabled"
        listed = volume_services(cloud)[host]
        assert (listed["Status"], listed["Disabled Reason"]) == ("enabled", None)
        first = create(cloud)
        made.append(first["id"])
        assert first["id"] in roomy.wanted()
        roomy.converge()
        cloud.openstack("compute", "service", "set", "--enable", roomy.name, "nova-compute")

        # Disabling cinder-volume: new volumes go to the other node, nova-compute untouched.
        cloud.openstack("volume", "service", "set", "--disable", "--disable-reason",
                        "disk swap", host, "cinder-volume")
        listed = volume_services(cloud)[host]
        assert (listed["Status"], listed["Disabled Reason"]) == ("disabled", "disk swap")
        assert volume_services(cloud)[f"{small.name}@atwill"]["Status"] == "enabled"
        assert compute_service(cloud, roomy.name)["Status"] == "enabled"
        second = create(cloud)
        made.append(second["id"])
        assert second["id"] in small.wanted() and second["id"] not in roomy.wanted()
        # A copy is made where its source is: none while that node's service is disabled.
        clone = create(cloud, source=first["id"])
        made.append(clone["id"])
        assert cloud.openstack("volume", "show", clone["id"], "-f", "json")["status"] == "error"
        assert clone["id"] not in roomy.wanted()

        # The volume already there keeps working: shown, renamed, deleted.
        assert cloud.openstack("volume", "show", first["id"], "-f", "json")["status"] == \
            "available"
        cloud.openstack("volume", "set", "--name", unique("kept"), first["id"])
        cloud.openstack("volume", "delete", first["id"])
        assert first["id"] not in roomy.wanted()

        # Enabled again (the reason goes with it): the roomy node takes volumes again.
        cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
        listed = volume_services(cloud)[host]
        assert (listed["Status"], listed["Disabled Reason"]) == ("enabled", None)
        third = create(cloud)
        made.append(third["id"])
        assert third["id"] in roomy.wanted()
    finally:
        cloud.openstack("compute", "service", "set", "--enable", roomy.name, "nova-compute")
        cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
        for vid in made:
            gone(cloud, vid, roomy, small)


def test_no_enabled_volume_service_is_no_valid_backend(
        cloud: Cloud, nodes: tuple[StorageNode, StorageNode]) -> None:
    enabled = [h for h, s in volume_services(cloud).items() if s["Status"] == "enabled"]
    made: list[str] = []
    try:
        for host in enabled:
            cloud.openstack("volume", "service", "set", "--disable", host, "cinder-volume")
        zones = cloud.openstack("availability", "zone", "list", "--volume", "-f", "json")
        assert zones == []
        vol = create(cloud)
        made.append(vol["id"])
        assert cloud.openstack("volume", "show", vol["id"], "-f", "json")["status"] == "error"
        assert all(vol["id"] not in node.wanted() for node in nodes)
    finally:
        for host in enabled:
            cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
        for vid in made:
            gone(cloud, vid, *nodes)
    with_room = create(cloud)
    try:
        assert with_room["id"] in nodes[0].wanted()
    finally:
        gone(cloud, with_room["id"], *nodes)


def test_a_volume_on_a_disabled_node_attaches_and_detaches(
        cloud: Cloud, nodes: tuple[StorageNode, StorageNode]) -> None:
    roomy, small = nodes  # the small node is a compute node too: the attachment's target
    host = f"{roomy.name}@atwill"
    vid = create(cloud)["id"]
    attachments = f"{V3}/attachments"
    try:
        assert vid in roomy.wanted()
        roomy.converge()
        cloud.openstack("volume", "service", "set", "--disable", host, "cinder-volume")
        with cloud.http(cloud.token()) as client:
            made = client.post(attachments, json={"attachment": {"volume_uuid": vid}},
                               headers=MV)
            assert made.status_code == 200, made.text
            att = made.json()["attachment"]["id"]
            put = client.put(f"{attachments}/{att}", headers=MV, json={
                "attachment": {"connector": {"host": small.name, "platform": "x86_64"}}})
            assert put.status_code == 200, put.text
            assert [e["node_id"] for e in roomy.wanted()[vid]["exports"]] == [small.id]
            roomy.converge()
            done = client.post(f"{attachments}/{att}/action", json={"os-complete": {}},
                               headers=MV)
            assert done.status_code == 204, done.text
            assert cloud.openstack("volume", "show", vid, "-f", "json")["status"] == "in-use"
            left = client.delete(f"{attachments}/{att}", headers=MV)
            assert left.status_code == 200, left.text
            assert roomy.wanted()[vid]["exports"] == []
            roomy.converge()
            assert cloud.openstack("volume", "show", vid, "-f", "json")["status"] == \
                "available"
    finally:
        cloud.openstack("volume", "service", "set", "--enable", host, "cinder-volume")
        gone(cloud, vid, roomy, small)


def state(cloud: Cloud) -> tuple[dict, dict]:
    """Every row but the nodes' (heartbeats change them), and every service's flags."""
    rows = {k: v for k, v in cloud.db_snapshot().items() if k != "nodes"}
    with cloud.http(cloud.token()) as client:
        services = client.get(f"{V3}/os-services").json()["services"]
    return rows, {(s["binary"], s["host"]): (s["status"], s["disabled_reason"])
                  for s in services}


def test_bad_inputs_change_nothing(cloud: Cloud, nodes: tuple[StorageNode, StorageNode]) -> None:
    roomy = nodes[0]
    host = f"{roomy.name}@atwill"
    with cloud.http(cloud.token()) as client:
        scheduler = [s["host"] for s in client.get(f"{V3}/os-services").json()["services"]
                     if s["binary"] == "cinder-scheduler"][0]
        project = client.get("/identity/v3/auth/tokens",
                             headers={"X-Subject-Token": client.headers["X-Auth-Token"]})
        project_id = project.json()["token"]["project"]["id"]
    member = make_user(cloud, "member")
    before = state(cloud)
    good = {"host": host, "binary": "cinder-volume"}
    cases = [
        ("disable", {"host": "nosuch@atwill", "binary": "cinder-volume"}, 404,
         "Service cinder-volume could not be found on host nosuch@atwill."),
        ("disable", {"host": f"{roomy.name}@lvm", "binary": "cinder-volume"}, 404,
         "could not be found"),
        ("disable", {"host": host, "binary": "nova-compute"}, 404, "could not be found"),
        ("disable", {"host": scheduler, "binary": "cinder-scheduler"}, 400,
         "cannot be disabled"),
        ("disable", {"binary": "cinder-volume"}, 400, "Host field is missing."),
        ("disable", {"host": host}, 400, "'binary' is a required property"),
        ("disable", {**good, "bogus": 1}, 400, "Additional properties are not allowed"),
        ("disable-log-reason", {**good, "disabled_reason": "x" * 256}, 400,
         "more than 255 characters"),
        ("disable-log-reason", {**good, "disabled_reason": 42}, 400,
         "is not of type 'string'"),
        ("disable-log-reason", {**good, "disabled_reason": " "}, 400, "minimum character"),
        # Cinder routes no other action: 404 (was a 400 here).
        ("nosuch", good, 404, "Unknown action"),
        ("enable-everything", good, 404, "Unknown action"),
    ]
    with cloud.http(cloud.token()) as client:
        for action, body, status, message in cases:
            resp = client.put(f"{V3}/os-services/{action}", json=body)
            assert resp.status_code == status, (action, body, resp.text)
            (fault,) = resp.json().values()
            assert message in fault["message"], (action, body, fault)
        for raw in ("[]", "not json"):
            resp = client.put(f"{V3}/os-services/disable", content=raw,
                              headers={"Content-Type": "application/json"})
            assert resp.status_code == 400, resp.text
        wrong = client.put(f"{V3}/{'0' * 32}/os-services/disable", json=good)
        assert wrong.status_code == 400 and "Malformed request url" in wrong.text
    with cloud.http(cloud.token(member)) as client:
        refused = client.put(f"{V3}/os-services/disable", json=good)
        assert refused.status_code == 403
        assert "volume_extension:services:update" in refused.text
    assert state(cloud) == before

    # The project id in the URL is accepted, and a bare host names its host@backend.
    with cloud.http(cloud.token()) as client:
        try:
            resp = client.put(f"{V3}/{project_id}/os-services/disable",
                              json={"host": roomy.name, "service": "cinder-volume"})
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"disabled": True, "status": "disabled", "host": roomy.name,
                                   "service": "cinder-volume", "binary": ""}
            assert volume_services(cloud)[host]["Status"] == "disabled"
        finally:
            resp = client.put(f"{V3}/os-services/enable", json=good)
            assert resp.json() == {"disabled": False, "status": "enabled", "host": host,
                                   "service": "", "binary": "cinder-volume"}


def test_freeze_and_thaw_as_cinder(cloud: Cloud, nodes: tuple[StorageNode, StorageNode]) -> None:
    roomy, small = nodes
    host = f"{roomy.name}@atwill"
    vid = create(cloud)["id"]
    made = [vid]
    frozen_msg = "Modification operations are not allowed on frozen storage backends."

    def services(client) -> dict:
        return {s["host"]: s for s in client.get(f"{V3}/os-services").json()["services"]}

    def put(client, action: str) -> tuple:
        """PUT os-services/{action} on host, answered 200 with no body: the service's
        (frozen, status, disabled_reason) as listed after."""
        resp = client.put(f"{V3}/os-services/{action}", json={"host": host})
        assert (resp.status_code, resp.content) == (200, b"")
        listed = services(client)[host]
        return listed["frozen"], listed["status"], listed["disabled_reason"]

    try:
        assert vid in roomy.wanted()
        roomy.converge()
        with cloud.http(cloud.token()) as client:
            assert put(client, "freeze") == (True, "disabled", "frozen")
            again = client.put(f"{V3}/os-services/freeze", json={"host": roomy.name})
            assert again.status_code == 400
            assert again.json()["badRequest"]["message"] == (
                "Invalid input received: No service could be changed: frozen in "
                f"['{host}'] must be False to failover.")
            # Management operations on its volumes are refused, forced or not.
            for resp in (client.delete(f"{V3}/volumes/{vid}"),
                         client.post(f"{V3}/volumes/{vid}/action", json={"os-force_delete": {}}),
                         client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": vid}})):
                assert resp.status_code == 400, resp.text
                assert frozen_msg in resp.json()["badRequest"]["message"]
            # Enabled again, it stays frozen: it takes no new volume.
            client.put(f"{V3}/os-services/enable", json={"host": host, "binary": "cinder-volume"})
            assert services(client)[host]["frozen"] is True
            other = create(cloud)
            made.append(other["id"])
            assert other["id"] in small.wanted() and other["id"] not in roomy.wanted()
            # Bad bodies, unknown hosts, and a failover (no replication here): Cinder's 400s.
            mv326 = {"OpenStack-API-Version": "volume 3.26"}
            cases = [
                ("thaw", {}, {}, "Host field is missing."),
                ("thaw", {"host": host, "bogus": 1}, {}, "('bogus' was unexpected)"),
                ("thaw", {"host": "nosuch"}, {}, "No service found with host=nosuch"),
                ("thaw", {"cluster": "c1"}, mv326, "No service found with cluster=c1"),
                ("thaw", {"host": host, "cluster": "c1"}, mv326,
                 "One and only one of cluster and host must be set."),
                ("failover_host", {"host": host}, {},
                 "replication_status in ['" + host + "'] must be ['enabled', 'failed-over'] "
                 "and must be up to failover."),
            ]
            for action, body, headers, message in cases:
                resp = client.put(f"{V3}/os-services/{action}", json=body, headers=headers)
                assert resp.status_code == 400, (action, body, resp.text)
                assert message in resp.json()["badRequest"]["message"], (action, body)
            assert services(client)[host]["frozen"] is True
        member = make_user(cloud, "member")
        with cloud.http(cloud.token(member)) as client:
            refused = client.put(f"{V3}/os-services/thaw", json={"host": host})
            assert refused.status_code == 403 and "volume:thaw_host" in refused.text
        with cloud.http(cloud.token()) as client:
            assert put(client, "thaw") == (False, "enabled", "")
            again = client.put(f"{V3}/os-services/thaw", json={"host": host})
            assert again.status_code == 400 and "frozen in" in again.text \
                and "must be True to failover." in again.text
    finally:
        with cloud.http(cloud.token()) as client:
            client.put(f"{V3}/os-services/thaw", json={"host": host})
            client.put(f"{V3}/os-services/enable", json={"host": host, "binary": "cinder-volume"})
        for made_id in made:
            gone(cloud, made_id, roomy, small)
