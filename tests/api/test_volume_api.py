"""Block Storage v3 through the real CLI, openstacksdk and the API: discovery, types,
volumes on a storage node (states from its reports), quotas, limits, zones, services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.test_compute_nonadmin import make_project, make_user
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, CommandFailed, unique

V3 = "/volume/v3"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {version}"}


@pytest.fixture(scope="module")
def storage(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageNode]:
    node = StorageNode(cloud, tmp_path_factory.mktemp("vol-nodes"), free_gb=20)
    node.keep_beating()
    try:
        yield node
    finally:
        node.remove()


def show(cloud: Cloud, volume: str, user: str = "admin") -> dict:
    return cloud.openstack("volume", "show", volume, "-f", "json", user=user)


def gone(cloud: Cloud, node: StorageNode, volume_id: str) -> None:
    """Force-delete (any state), then the node reports it off its disk: the row goes."""
    with cloud.http(cloud.token()) as client:
        forced = client.post(f"{V3}/volumes/{volume_id}/action", json={"os-force_delete": {}})
        assert forced.status_code in (202, 404), forced.text
        assert volume_id not in node.wanted()
        node.converge()
        assert client.get(f"{V3}/volumes/{volume_id}").status_code == 404


def rows(cloud: Cloud) -> dict:
    """Every row but the nodes' (the storage node's heartbeats keep changing its row)."""
    return {k: v for k, v in cloud.db_snapshot().items() if k != "nodes"}


def test_version_discovery_and_microversions(cloud: Cloud) -> None:
    with cloud.http() as client:
        listed = client.get("/volume/")
        assert listed.status_code == 300
        (v3,) = listed.json()["versions"]
        assert (v3["id"], v3["min_version"], v3["version"]) == ("v3.0", "3.0", "3.70")
        assert {"status", "updated", "links", "media-types"} <= set(v3)
        assert client.get(V3).json()["versions"][0]["id"] == "v3.0"
    token = cloud.token()
    with cloud.http(token) as client:
        resp = client.get(f"{V3}/types", headers=mv("3.50"))
        assert resp.status_code == 200 and resp.headers["OpenStack-API-Version"] == "volume 3.50"
        assert client.get(f"{V3}/types").headers["OpenStack-API-Version"] == "volume 3.0"
        too_new = client.get(f"{V3}/types", headers=mv("3.71"))
        assert too_new.status_code == 406 and "maximum is 3.70" in too_new.text
        project = client.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token})
        project_id = project.json()["token"]["project"]["id"]
        # The project id in the URL is optional (3.67) and must be the token's own.
        assert client.get(f"{V3}/{project_id}/types").status_code == 200
        wrong = client.get(f"{V3}/{'0' * 32}/types")
        assert wrong.status_code == 400 and "Malformed request url" in wrong.text


def test_volume_types_cli_and_policy(cloud: Cloud) -> None:
    names = [t["Name"] for t in cloud.openstack("volume", "type", "list", "-f", "json")]
    assert "__DEFAULT__" in names
    name = unique("vtype")
    made = cloud.openstack("volume", "type", "create", "--property", "tier=gold",
                           "--description", "fast", name, "-f", "json")
    assert made["name"] == name and made["is_public"] is True
    cloud.openstack("volume", "type", "set", "--property", "iops=100", name)
    shown = cloud.openstack("volume", "type", "show", name, "-f", "json")
    assert shown["properties"] in ({"tier": "gold", "iops": "100"}, "iops='100', tier='gold'")
    member = make_user(cloud, "member")
    refused = cloud.openstack("volume", "type", "create", unique("t"), user=member, check=False)
    assert refused.returncode != 0 and "Policy doesn't allow" in refused.stderr
    with cloud.http(cloud.token()) as client:
        dup = client.post(f"{V3}/types", json={"volume_type": {"name": name}})
        assert dup.status_code == 409 and "already exists" in dup.json()["conflictingRequest"][
            "message"]
        default = client.get(f"{V3}/types/default").json()["volume_type"]
        assert default["name"] == "__DEFAULT__"
        assert client.delete(f"{V3}/types/{default['id']}").status_code == 400
    cloud.openstack("volume", "type", "delete", name)
    assert name not in [t["Name"] for t in cloud.openstack("volume", "type", "list", "-f",
                                                           "json")]


def test_volume_lifecycle_cli(cloud: Cloud, storage: StorageNode) -> None:
    name = unique("vol")
    made = cloud.openstack("volume", "create", "--size", "1", "--property", "a=b", name,
                           "-f", "json")
    assert made["status"] == "creating" and made["size"] == 1
    vid = made["id"]
    try:
        spec = storage.wanted()[vid]
        assert spec == {"id": vid, "size_gb": 1, "format": "qcow2", "source": None,
                        "snapshots": [], "exports": []}
        storage.converge()
        shown = show(cloud, name)
        assert shown["status"] == "available" and shown["bootable"] is False
        assert shown["type"] == "__DEFAULT__" and shown["availability_zone"] == "nova"
        cloud.openstack("volume", "set", "--name", name + "-x", "--description", "d",
                        "--property", "c=d", "--bootable", "--read-only", name)
        shown = show(cloud, name + "-x")
        assert shown["description"] == "d" and shown["bootable"] is True
        assert "readonly" in str(shown["properties"]) and "c" in str(shown["properties"])
        cloud.openstack("volume", "set", "--size", "3", name + "-x")
        assert show(cloud, vid)["status"] == "extending"
        assert storage.wanted()[vid]["size_gb"] == 3
        storage.converge()
        assert show(cloud, vid)["status"] == "available" and show(cloud, vid)["size"] == 3
        assert vid in [v["ID"] for v in cloud.openstack("volume", "list", "-f", "json")]
        cloud.openstack("volume", "delete", vid)
        assert show(cloud, vid)["status"] == "deleting"
    finally:
        gone(cloud, storage, vid)


def test_sdk_volume_and_report_error(cloud: Cloud, storage: StorageNode) -> None:
    conn = cloud.sdk()
    vol = conn.block_storage.create_volume(size=2, name=unique("sdkvol"))
    try:
        assert conn.block_storage.get_volume(vol.id).status == "creating"
        storage.report({vol.id: {"state": "error", "size_gb": 2, "error": "disk full"}})
        assert conn.block_storage.get_volume(vol.id).status == "error"
        assert vol.id in [v.id for v in conn.block_storage.volumes()]
    finally:
        conn.block_storage.delete_volume(vol.id)
        gone(cloud, storage, vol.id)


def test_quota_exceeded_and_bad_inputs_change_nothing(cloud: Cloud,
                                                      storage: StorageNode) -> None:
    project = make_project(cloud)
    member = make_user(cloud, "member", project)
    cloud.openstack("quota", "set", "--volumes", "1", "--gigabytes", "3", project[0])
    quota = {r["Resource"]: r["Limit"] for r in cloud.openstack("quota", "show", project[0],
                                                                "-f", "json")}
    assert quota["volumes"] == 1 and quota["gigabytes"] == 3 and quota["snapshots"] == 10
    first = cloud.openstack("volume", "create", "--size", "2", unique("q"), "-f", "json",
                            user=member)
    try:
        before = rows(cloud)
        token = cloud.token(member)
        with cloud.http(token) as client:
            over = client.post(f"{V3}/volumes", json={"volume": {"size": 1}})
            assert over.status_code == 413
            assert over.json()["overLimit"]["message"] == (
                "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded for "
                "quota 'volumes'.")
            for body, status in (({"size": 0}, 400), ({"size": "x"}, 400), ({}, 400),
                                 ({"size": 1, "volume_type": "nope"}, 404),
                                 ({"size": 1, "availability_zone": "mars"}, 400),
                                 ({"size": 1, "snapshot_id": "nope"}, 404),
                                 ({"size": 1, "source_volid": "nope"}, 404),
                                 ({"size": 1, "imageRef": "nope"}, 404),
                                 ({"size": 1, "bogus": 1}, 400)):
                resp = client.post(f"{V3}/volumes", json={"volume": body})
                assert resp.status_code == status, (body, resp.text)
            assert client.delete(f"{V3}/volumes/nope").status_code == 404
            ext = client.post(f"{V3}/volumes/{first['id']}/action",
                              json={"os-extend": {"new_size": 2}})
            assert ext.status_code == 400  # still creating, and not larger
        assert rows(cloud) == before
        with pytest.raises(CommandFailed, match="VolumeLimitExceeded"):
            cloud.openstack("volume", "create", "--size", "1", unique("q"), user=member)
        limits = cloud.openstack("limits", "show", "--absolute", "-f", "json", user=member)
        absolute = {row["Name"]: row["Value"] for row in limits}
        assert absolute["max_total_volumes"] == 1 and absolute["total_volumes_used"] == 1
        assert absolute["total_gigabytes_used"] == 2
        usage = {r["Resource"]: r for r in cloud.openstack("quota", "show", "--usage",
                                                           project[0], "-f", "json")}
        assert (usage["volumes"]["Limit"], usage["volumes"]["In Use"]) == (1, 1)
        assert usage["gigabytes"]["In Use"] == 2
    finally:
        gone(cloud, storage, first["id"])
        cloud.openstack("quota", "delete", "--volume", project[0])


def test_zones_and_services(cloud: Cloud, storage: StorageNode) -> None:
    zones = cloud.openstack("availability", "zone", "list", "--volume", "-f", "json")
    assert {"Zone Name": "nova", "Zone Status": "available"}.items() <= zones[0].items()
    services = cloud.openstack("volume", "service", "list", "-f", "json")
    hosts = {s["Host"]: s for s in services if s["Binary"] == "cinder-volume"}
    assert hosts[f"{storage.name}@atwill"]["State"] == "up"
    assert any(s["Binary"] == "cinder-scheduler" for s in services)


# Tempest's volume schemas (additionalProperties: false): what create answers at 3.0, and
# what show adds for an admin (the tenant, host and migration extensions).
CREATE_KEYS = {"id", "name", "description", "status", "size", "availability_zone",
               "created_at", "updated_at", "volume_type", "snapshot_id", "source_volid",
               "metadata", "links", "user_id", "bootable", "encrypted", "replication_status",
               "consistencygroup_id", "multiattach", "migration_status", "attachments"}
SHOW_ADMIN_KEYS = CREATE_KEYS | {"os-vol-tenant-attr:tenant_id", "os-vol-host-attr:host",
                                 "os-vol-mig-status-attr:migstat",
                                 "os-vol-mig-status-attr:name_id"}
SNAPSHOT_KEYS = {"status", "description", "created_at", "name", "volume_id", "metadata", "id",
                 "size", "updated_at"}
SNAPSHOT_SHOW_KEYS = SNAPSHOT_KEYS | {"os-extended-snapshot-attributes:progress",
                                      "os-extended-snapshot-attributes:project_id"}


def test_shapes_as_tempest(cloud: Cloud, storage: StorageNode) -> None:
    with cloud.http(cloud.token()) as client:
        made = client.post(f"{V3}/volumes", json={"volume": {"size": 1}})
        assert made.status_code == 202
        vol = made.json()["volume"]
        try:
            assert set(vol) == CREATE_KEYS and vol["bootable"] == "false"
            storage.converge()
            shown = client.get(f"{V3}/volumes/{vol['id']}").json()["volume"]
            assert set(shown) == SHOW_ADMIN_KEYS
            assert shown["os-vol-host-attr:host"] == f"{storage.name}@atwill#atwill"
            newer = client.get(f"{V3}/volumes/{vol['id']}", headers=mv("3.70")).json()["volume"]
            assert set(newer) - SHOW_ADMIN_KEYS == {
                "group_id", "provider_id", "service_uuid", "shared_targets", "volume_type_id",
                "consumes_quota"}
            listed = client.get(f"{V3}/volumes").json()["volumes"]
            assert all(set(v) == {"id", "name", "links"} for v in listed)
            snap = client.post(f"{V3}/snapshots", json={"snapshot": {"volume_id": vol["id"]}})
            assert snap.status_code == 202 and set(snap.json()["snapshot"]) == SNAPSHOT_KEYS
            sid = snap.json()["snapshot"]["id"]
            storage.converge()
            assert set(client.get(f"{V3}/snapshots/{sid}").json()["snapshot"]) == \
                SNAPSHOT_SHOW_KEYS
            assert all(set(s) == SNAPSHOT_KEYS
                       for s in client.get(f"{V3}/snapshots").json()["snapshots"])
            assert client.delete(f"{V3}/snapshots/{sid}").status_code == 202
            storage.converge()
            vtype = client.get(f"{V3}/types/default").json()["volume_type"]
            assert set(vtype) == {"id", "name", "description", "is_public", "extra_specs",
                                  "os-volume-type-access:is_public"}
        finally:
            gone(cloud, storage, vol["id"])


def test_projects_are_isolated_and_admin_actions_refused(cloud: Cloud,
                                                         storage: StorageNode) -> None:
    member = make_user(cloud, "member")
    mine = cloud.openstack("volume", "create", "--size", "1", unique("iso"), "-f", "json",
                           user=member)
    theirs = cloud.openstack("volume", "create", "--size", "1", unique("adm"), "-f", "json")
    try:
        storage.converge()
        listed = [v["ID"] for v in cloud.openstack("volume", "list", "-f", "json", user=member)]
        assert mine["id"] in listed and theirs["id"] not in listed
        everyone = [v["ID"] for v in cloud.openstack("volume", "list", "--all-projects", "-f",
                                                     "json")]
        assert {mine["id"], theirs["id"]} <= set(everyone)
        before = rows(cloud)
        with cloud.http(cloud.token(member)) as client:
            assert client.get(f"{V3}/volumes/{theirs['id']}").status_code == 404
            assert client.delete(f"{V3}/volumes/{theirs['id']}").status_code == 404
            reset = client.post(f"{V3}/volumes/{mine['id']}/action",
                                json={"os-reset_status": {"status": "error"}})
            assert reset.status_code == 403
            project_id = client.get(f"{V3}/volumes/{mine['id']}").json()["volume"][
                "os-vol-tenant-attr:tenant_id"]
            quota = client.put(f"{V3}/os-quota-sets/{project_id}",
                               json={"quota_set": {"volumes": 100}})
            assert quota.status_code == 403
            assert client.get(f"{V3}/os-services").status_code == 403
        assert rows(cloud) == before
        with cloud.http(cloud.token()) as client:
            reset = client.post(f"{V3}/volumes/{mine['id']}/action",
                                json={"os-reset_status": {"status": "error"}})
            assert reset.status_code == 202
        assert show(cloud, mine["id"], user=member)["status"] == "error"
    finally:
        gone(cloud, storage, mine["id"])
        gone(cloud, storage, theirs["id"])
