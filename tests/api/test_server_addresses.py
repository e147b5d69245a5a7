"""A server's addresses list the floating IPs on its ports as Nova does.

The server is scheduled to a node row (no agent): its port is made and bound on
scheduling, which is all the addresses need.
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


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A member's network routed to public, and a server on it placed on a node."""
    user = make_user(cloud, "member")
    data = tmp_path_factory.mktemp("img") / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("addrflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("addrimg"),
                            "-f", "json")["id"]
    net, sub, router = unique("addrnet"), unique("addrsub"), unique("addrrt")
    cloud.openstack("network", "create", net, user=user)
    cloud.openstack("subnet", "create", "--network", net, "--subnet-range", "10.78.0.0/24",
                    sub, user=user)
    cloud.openstack("router", "create", router, user=user)
    cloud.openstack("router", "set", router, "--external-gateway", "public", user=user)
    cloud.openstack("router", "add", "subnet", router, sub, user=user)
    zone = unique("addraz")
    db = Database(cloud.db_url())
    node = Node(name=unique("addrnode"), availability_zone=zone, host_ip="10.0.0.8", vcpus=8,
                memory_mb=8192, local_gb=50, last_heartbeat=None)  # the HA monitor skips it
    with db.session() as session:
        session.add(node)
    server = cloud.openstack("server", "create", "--flavor", flavor, "--image", image,
                             "--network", net, "--availability-zone", zone, unique("addrsrv"),
                             "-f", "json", user=user)["id"]
    try:
        yield {"user": user, "server": server, "net": net}
    finally:
        cloud.openstack("server", "delete", server, user=user)
        cloud.openstack("router", "remove", "subnet", router, sub, user=user)
        cloud.openstack("router", "delete", router, user=user)
        cloud.openstack("network", "delete", net, user=user)
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        with db.session() as session:
            session.execute(delete(Node).where(Node.id == node.id))
        db.dispose()


def _addresses(cloud: Cloud, env: dict[str, str]) -> tuple[dict, dict]:
    """The server's addresses in show and in list/detail."""
    with cloud.http(cloud.token(env["user"])) as client:
        shown = client.get(f"{V}/servers/{env['server']}").json()["server"]["addresses"]
        listed = next(s for s in client.get(f"{V}/servers/detail").json()["servers"]
                      if s["id"] == env["server"])["addresses"]
    return shown, listed


def test_floating_ip_appears_in_addresses(cloud: Cloud, env: dict[str, str]) -> None:
    user, server = env["user"], env["server"]
    port = cloud.openstack("port", "list", "--server", server, "-f", "json", user=user)[0]
    mac = port["MAC Address"]
    fixed = port["Fixed IP Addresses"][0]["ip_address"]
    fip = cloud.openstack("floating", "ip", "create", "public", "-f", "json",
                          user=user)["floating_ip_address"]
    try:
        cloud.openstack("server", "add", "floating", "ip", server, fip, user=user)
        shown, listed = _addresses(cloud, env)
        assert shown == listed == {env["net"]: [
            {"version": 4, "addr": fixed, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": mac},
            {"version": 4, "addr": fip, "OS-EXT-IPS:type": "floating",
             "OS-EXT-IPS-MAC:mac_addr": mac}]}
        cli = cloud.openstack("server", "show", server, "-f", "json", user=user)
        assert cli["addresses"] == {env["net"]: [fixed, fip]}
        cloud.openstack("server", "remove", "floating", "ip", server, fip, user=user)
        shown, _ = _addresses(cloud, env)
        assert [a["OS-EXT-IPS:type"] for a in shown[env["net"]]] == ["fixed"]
    finally:
        cloud.openstack("floating", "ip", "delete", fip, user=user)


def test_sdk_waits_for_the_floating_ip_in_addresses(cloud: Cloud,
                                                   env: dict[str, str]) -> None:
    conn = cloud.sdk(env["user"])
    fip = conn.network.create_ip(floating_network_id=conn.network.find_network(
        "public").id)
    try:
        server = conn.compute.get_server(env["server"])
        # add_ip_list attaches, then polls the server's addresses until the floating IP
        # shows there (a timeout error otherwise).
        conn.add_ip_list(server, [fip.floating_ip_address], wait=True, timeout=15)
        server = conn.compute.get_server(env["server"])
        assert conn.get_server_public_ip(server) == fip.floating_ip_address
        conn.detach_ip_from_server(server_id=env["server"], floating_ip_id=fip.id)
    finally:
        conn.network.delete_ip(fip)
        conn.close()
