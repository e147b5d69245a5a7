"""The launch dialog's every field reaches Nova: image, flavor, network, key pair (imported
on the key pairs page), security groups, zone and user data; checked on what the compute
and network APIs then hold. (The browser test launches with the image, flavor, zone and
user data only, and watches the status turn ACTIVE.)"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.dashboard_web import D, WebUser
from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " dash@test"


def test_every_launch_field_reaches_the_server(cloud: Cloud, engine: str,
                                               tmp_path: Path) -> None:
    if engine != "sqlite":
        pytest.skip("the dialog's body is the same on both engines")
    zone = unique("dlaz")
    node = FakeNode(cloud, tmp_path, zone)
    data = tmp_path / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("dlimg"),
                            "-f", "json")["id"]
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1",
                             unique("dlflv"), "-f", "json")["id"]
    project, user = unique("dlproj"), unique("dluser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    web = WebUser(cloud)
    try:
        web.login_as(user)
        _launch(cloud, web, user, zone, image, flavor)
    finally:
        web.close()
        for server in cloud.openstack("server", "list", "-f", "json", user=user):
            cloud.openstack("server", "delete", "--wait", server["ID"])
        for kind in ("network", "security group"):
            for found in cloud.openstack(kind, "list", "-f", "json", user=user):
                if found["Name"].startswith("dl"):
                    cloud.openstack(kind, "delete", found["ID"], user=user)
        node.remove()
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)


def _launch(cloud: Cloud, web: WebUser, user: str, zone: str, image: str,
            flavor: str) -> None:
    key, net, group, name = unique("dlkey"), unique("dlnet"), unique("dlsg"), unique("dlvm")
    pub = public_key()
    imported = web.post("/keypairs", {"name": key, "public_key": pub})
    assert imported.status_code == 200 and "PRIVATE KEY" not in imported.text
    with cloud.http(cloud.token(user)) as client:
        shown = client.get(f"{V}/os-keypairs/{key}").json()["keypair"]
    assert shown["public_key"] == pub and shown["fingerprint"]
    assert web.post("/networks", {"name": net, "cidr": "10.95.0.0/24"}).status_code == 303
    network = cloud.openstack("network", "show", net, "-f", "json", user=user)["id"]
    assert web.post("/security-groups", {"name": group}).status_code == 303
    dialog = web.client.get(f"{D}/instances").text
    for option in (f'<option value="{network}">{net}</option>',
                   f'<option value="{key}">{key}</option>',
                   f'<option value="{group}">{group}</option>',
                   f'<option value="{zone}">{zone}</option>',
                   '<option value="default" selected>default</option>'):
        assert option in dialog, option
    # As a browser posts the dialog: CRLF line ends in the text area, two groups picked.
    made = web.client.post(f"{D}/instances", data={
        "csrf": web.csrf(), "name": name, "image": image, "flavor": flavor,
        "network": network, "keypair": key, "security_group": ["default", group],
        "zone": zone, "user_data": "#!/bin/sh\r\necho launched\r\n"})
    assert made.status_code == 303, made.text[-500:]
    (listed,) = cloud.openstack("server", "list", "--name", name, "-f", "json", user=user)
    with cloud.http(cloud.token()) as client:
        server = client.get(f"{V}/servers/{listed['ID']}",
                            headers={"OpenStack-API-Version": "compute 2.79"}).json()["server"]
    assert server["key_name"] == key
    assert server["OS-EXT-AZ:availability_zone"] == zone
    assert server["image"]["id"] == image and server["flavor"]["original_name"]
    assert sorted(g["name"] for g in server["security_groups"]) == sorted(["default", group])
    assert list(server["addresses"]) == [net]
    assert server["addresses"][net][0]["addr"].startswith("10.95.0.")
    assert base64.b64decode(server["OS-EXT-SRV-ATTR:user_data"]).decode() == \
        "#!/bin/sh\necho launched\n"
