"""Admin host forcing at create: availability zone ZONE:HOST[:NODE] / ZONE::NODE (no
filters) and 2.74's host / hypervisor_hostname (filters still run), with the real CLI.

The nodes are rows with no agent: placement is what is tested, not the boot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from atwill.controller.db.compute import Node
from atwill.controller.db.session import Database
from tests.api.test_compute_nonadmin import make_user
from tests.cloud import Cloud, unique

V = "/compute/v2.1"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A zone of three nodes: 'big' (the scheduler's choice), 'small', and 'off' (disabled)."""
    data = tmp_path_factory.mktemp("img") / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("forceflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("forceimg"),
                            "-f", "json")["id"]
    zone = unique("forceaz")
    rows = {key: Node(name=unique(f"force{key}"), availability_zone=zone, host_ip="10.0.0.7",
                      vcpus=8, memory_mb=ram, local_gb=50, enabled=key != "off",
                      last_heartbeat=None)  # unheard: the HA monitor leaves it up
            for key, ram in (("big", 65536), ("small", 4096), ("off", 8192))}
    db = Database(cloud.db_url())
    with db.session() as session:
        session.add_all(rows.values())
    member = make_user(cloud, "member")
    try:
        yield {"flavor": flavor, "image": image, "zone": zone, "member": member,
               **{key: node.name for key, node in rows.items()}}
    finally:
        for user in ("admin", member):
            for server in cloud.openstack("server", "list", "-f", "json", user=user):
                cloud.openstack("server", "delete", server["ID"], user=user)
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        with db.session() as session:
            session.execute(delete(Node).where(Node.id.in_([n.id for n in rows.values()])))
        db.dispose()


def _create(cloud: Cloud, env: dict[str, str], *args: str, user: str = "admin",
            check: bool = True):
    return cloud.openstack("server", "create", "--flavor", env["flavor"], "--image",
                           env["image"], "--no-network", *args, unique("forced"),
                           "-f", "json", user=user, check=check)


def _show(cloud: Cloud, server_id: str) -> dict:
    with cloud.http(cloud.token()) as client:
        return client.get(f"{V}/servers/{server_id}", headers=mv("2.96")).json()["server"]


def test_scheduler_alone_picks_the_big_node(cloud: Cloud, env: dict[str, str]) -> None:
    made = _create(cloud, env, "--availability-zone", env["zone"])
    assert _show(cloud, made["id"])["OS-EXT-SRV-ATTR:host"] == env["big"]


@pytest.mark.parametrize("form", ["{zone}:{node}", "{zone}::{node}", "{zone}:{node}:{node}"])
def test_zone_forms_force_the_node(cloud: Cloud, env: dict[str, str], form: str) -> None:
    made = _create(cloud, env, "--availability-zone",
                   form.format(zone=env["zone"], node=env["small"]))
    shown = _show(cloud, made["id"])
    assert shown["OS-EXT-SRV-ATTR:host"] == env["small"]
    assert shown["OS-EXT-AZ:availability_zone"] == env["zone"]
    assert shown["status"] == "BUILD"


def test_forcing_skips_the_filters(cloud: Cloud, env: dict[str, str]) -> None:
    """A disabled node takes a forced server (Nova's force_hosts runs no filter)."""
    made = _create(cloud, env, "--availability-zone", f"{env['zone']}:{env['off']}")
    shown = _show(cloud, made["id"])
    assert shown["status"] == "BUILD" and shown["OS-EXT-SRV-ATTR:host"] == env["off"]


@pytest.mark.parametrize("option", ["--host", "--hypervisor-hostname"])
def test_requested_destination_places_there(cloud: Cloud, env: dict[str, str],
                                            option: str) -> None:
    made = _create(cloud, env, "--os-compute-api-version", "2.74", option, env["small"])
    shown = _show(cloud, made["id"])
    assert shown["OS-EXT-SRV-ATTR:host"] == env["small"], shown.get("fault")


def test_requested_destination_still_filters(cloud: Cloud, env: dict[str, str]) -> None:
    made = _create(cloud, env, "--os-compute-api-version", "2.74", "--host", env["off"])
    shown = _show(cloud, made["id"])
    assert shown["status"] == "ERROR" and shown["OS-EXT-SRV-ATTR:host"] is None
    assert "ComputeFilter eliminated 1 of 1" in shown["fault"]["message"]


def _post(cloud: Cloud, env: dict[str, str], user: str, version: str,
          **extra: str) -> tuple[int, str]:
    flavor = cloud.openstack("flavor", "show", env["flavor"], "-f", "json")["id"]
    body = {"server": {"name": unique("forced"), "flavorRef": flavor,
                       "imageRef": env["image"], "networks": "none", **extra}}
    with cloud.http(cloud.token(user)) as client:
        resp = client.post(f"{V}/servers", json=body, headers=mv(version))
        if resp.status_code == 202:
            client.delete(f"{V}/servers/{resp.json()['server']['id']}")
    return resp.status_code, resp.text


def test_members_are_refused(cloud: Cloud, env: dict[str, str]) -> None:
    member = env["member"]
    code, text = _post(cloud, env, member, "2.74",
                       availability_zone=f"{env['zone']}:{env['small']}")
    assert code == 403 and "create:forced_host" in text
    code, text = _post(cloud, env, member, "2.74", host=env["small"])
    assert code == 403 and "create:requested_destination" in text
    failed = _create(cloud, env, "--availability-zone", f"{env['zone']}:{env['small']}",
                     user=member, check=False)
    assert failed.returncode != 0 and "403" in failed.stderr and "forced_host" in failed.stderr
    assert cloud.openstack("server", "list", "-f", "json", user=member) == []


@pytest.mark.parametrize(("version", "extra", "message"), [
    ("2.74", {"availability_zone": "nova:nope-node"}, "Compute host nope-node could not be "
     "found."),
    ("2.74", {"host": "nope-node"}, "Compute host nope-node could not be found."),
    ("2.74", {"hypervisor_hostname": "nope-node"}, "Compute host nope-node could not be "
     "found."),
    ("2.73", {"host": "{small}"}, "2.74"),
    ("2.74", {"host": ""}, "host"),
    ("2.74", {"host": "{small}", "availability_zone": "{zone}:{small}"},
     "mutually exclusive"),
    ("2.74", {"availability_zone": "a:b:c:d"}, "Unable to parse availability_zone"),
])
def test_bad_destinations(cloud: Cloud, env: dict[str, str], version: str,
                          extra: dict[str, str], message: str) -> None:
    before = len(cloud.openstack("server", "list", "-f", "json"))
    extra = {k: v.format(**env) for k, v in extra.items()}
    code, text = _post(cloud, env, "admin", version, **extra)
    assert code == 400 and message in text, text
    assert len(cloud.openstack("server", "list", "-f", "json")) == before
