"""Dashboard pages over plain HTTP: forms reach the APIs, errors are the APIs' own.

What the browser tests leave out (key pairs, security groups, routers, bad input,
the event stream, static caching), checked on what the APIs then hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.dashboard_web import D, WebUser
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes

PAGES = ("/", "/instances", "/images", "/networks", "/routers", "/floating-ips",
         "/security-groups", "/keypairs", "/projects")


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> Iterator[str]:
    project, user = unique("dpproj"), unique("dpuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield user
    finally:
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


@pytest.fixture
def web(cloud: Cloud, member: str) -> Iterator[WebUser]:
    user = WebUser(cloud)
    user.login_as(member)
    try:
        yield user
    finally:
        user.close()


@pytest.mark.parametrize("who", ["member", "admin"])
def test_every_tenant_page_renders(cloud: Cloud, member: str, who: str) -> None:
    web = WebUser(cloud)
    try:
        web.login_as(member if who == "member" else "admin")
        for path in PAGES:
            resp = web.client.get(D + path)
            assert resp.status_code == 200, (path, resp.text[-500:])
            assert resp.headers["content-security-policy"].startswith("default-src 'self'")
            assert 'name="csrf"' in resp.text
    finally:
        web.close()


def test_keypair_private_key_is_shown_once(cloud: Cloud, web: WebUser, member: str) -> None:
    name = unique("dashkey")
    made = web.post("/keypairs", {"name": name})
    assert made.status_code == 200 and "PRIVATE KEY" in made.text
    listing = web.client.get(f"{D}/keypairs")
    assert name in listing.text and "PRIVATE KEY" not in listing.text
    shown = cloud.openstack("keypair", "show", name, "-f", "json", user=member)
    assert shown["name"] == name
    assert web.post(f"/keypairs/{name}/delete", {}).status_code == 303
    assert cloud.openstack("keypair", "list", "-f", "json", user=member) == []


def test_security_group_and_rule(cloud: Cloud, web: WebUser, member: str) -> None:
    name = unique("dashsg")
    assert web.post("/security-groups", {"name": name, "description": "web"}).status_code == 303
    group = cloud.openstack("security group", "show", name, "-f", "json", user=member)
    resp = web.post(f"/security-groups/{group['id']}/rules", {
        "direction": "ingress", "protocol": "tcp", "port_range_min": "22",
        "port_range_max": "22", "remote_ip_prefix": "192.0.2.0/24"})
    assert resp.status_code == 303
    rules = cloud.openstack("security group rule", "list", group["id"], "--long", "-f", "json",
                            user=member)
    assert any(r["Port Range"] == "22:22" and r["IP Range"] == "192.0.2.0/24" for r in rules)
    assert web.post(f"/security-groups/{group['id']}/delete", {}).status_code == 303
    assert cloud.openstack("security group", "list", "--project", group["project_id"],
                           "-f", "json", user=member) == [
        g for g in cloud.openstack("security group", "list", "-f", "json", user=member)
        if g["Name"] == "default"]


def test_router_with_an_interface(cloud: Cloud, web: WebUser, member: str) -> None:
    net, router = unique("dashrnet"), unique("dashrouter")
    assert web.post("/networks", {"name": net, "subnet_name": net, "cidr": "10.92.0.0/24",
                                  "dhcp": "on"}).status_code == 303
    subnet = cloud.openstack("subnet", "show", net, "-f", "json", user=member)
    assert subnet["enable_dhcp"] is True
    assert web.post("/routers", {"name": router}).status_code == 303
    made = cloud.openstack("router", "show", router, "-f", "json", user=member)
    assert web.post(f"/routers/{made['id']}/interface",
                    {"subnet": subnet["id"]}).status_code == 303
    assert "10.92.0.1" in web.client.get(f"{D}/routers").text
    assert web.post(f"/routers/{made['id']}/interface",
                    {"subnet": subnet["id"], "remove": "1"}).status_code == 303
    assert web.post(f"/routers/{made['id']}/delete", {}).status_code == 303
    network = cloud.openstack("network", "show", net, "-f", "json", user=member)
    assert web.post(f"/networks/{network['id']}/delete", {}).status_code == 303
    assert cloud.openstack("router", "list", "-f", "json", user=member) == []
    assert cloud.openstack("network", "list", "--name", net, "-f", "json", user=member) == []


def test_a_refused_subnet_leaves_no_network_and_says_why(cloud: Cloud, web: WebUser,
                                                         member: str) -> None:
    name = unique("dashbad")
    resp = web.post("/networks", {"name": name, "cidr": "10.93.0.0/33"})
    assert resp.status_code == 400 and "Bad request (400)" in resp.text
    assert "10.93.0.0/33" in resp.text  # Neutron's own message names the bad CIDR
    assert cloud.openstack("network", "list", "--name", name, "-f", "json", user=member) == []


def test_image_upload_needs_the_csrf_header(cloud: Cloud, web: WebUser, member: str) -> None:
    name = unique("dashimg")
    made = web.post("/images", {"name": name, "disk_format": "qcow2"})
    assert made.status_code == 201
    image_id = made.json()["id"]
    data = qcow2_bytes(4096)
    try:
        refused = web.client.put(f"{D}/images/{image_id}/file", content=data)
        assert refused.status_code == 403
        shown = cloud.openstack("image", "show", image_id, "-f", "json", user=member)
        assert shown["status"] == "queued"
        sent = web.client.put(f"{D}/images/{image_id}/file", content=data,
                              headers={"X-CSRF-Token": web.csrf()})
        assert sent.status_code == 204
        shown = cloud.openstack("image", "show", image_id, "-f", "json", user=member)
        assert shown["status"] == "active" and shown["size"] == len(data)
    finally:
        assert web.post(f"/images/{image_id}/delete", {}).status_code == 303
    assert cloud.openstack("image", "list", "--name", name, "-f", "json", user=member) == []


def test_instance_events_stream_the_list(web: WebUser) -> None:
    with web.client.stream("GET", f"{D}/instances/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:]) == []
                break


def test_static_files_are_cached(cloud: Cloud) -> None:
    with cloud.http() as client:
        resp = client.get(f"{D}/static/dashboard.js")
    assert resp.status_code == 200 and "EventSource" in resp.text
    assert resp.headers["cache-control"] == "public, max-age=3600"
