"""Dashboard pages over plain HTTP: forms reach the APIs, errors are the APIs' own.

What the browser tests leave out (key pairs, security groups, routers, bad input,
the event stream, static caching), checked on what the APIs then hold.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.api.dashboard_web import D, WebUser
from tests.cloud import Cloud, unique
from tests.imagedata import qcow2_bytes

PAGES = ("/", "/instances", "/images", "/volumes", "/stacks", "/networks", "/routers",
         "/floating-ips", "/security-groups", "/keypairs", "/projects", "/quotas")
OPERATOR_PAGES = ("/admin", "/admin/nodes", "/admin/hypervisors", "/admin/projects",
                  "/admin/users", "/admin/flavors", "/admin/roles", "/admin/quotas",
                  "/admin/map")


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


def test_static_files_are_cached_under_a_versioned_url(cloud: Cloud) -> None:
    with cloud.http() as client:
        login = client.get(f"{D}/login").text
        (script,) = re.findall(r'<script src="([^"]+)"', login)
        (style,) = re.findall(r'<link rel="stylesheet" href="([^"]+)"', login)
        for url in (script, style):
            # The version is the files' content hash: an upgrade changes the URL.
            assert re.fullmatch(rf"{D}/static/dashboard\.(js|css)\?v=[0-9a-f]{{12}}", url)
            resp = client.get(url)
            assert resp.status_code == 200
            assert resp.headers["cache-control"] == "public, max-age=3600"
        assert "EventSource" in client.get(script).text
    assert login.count("?v=") == 2


def test_member_is_refused_every_operator_page(cloud: Cloud, web: WebUser) -> None:
    overview = web.client.get(f"{D}/")
    assert "/admin" not in overview.text  # no operator link in the menu
    for path in (*OPERATOR_PAGES, "/admin/map/events", f"/admin/nodes/{uuid.uuid4()}"):
        resp = web.client.get(D + path)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "Forbidden (403)" in resp.text
    name = unique("dashmemflv")
    refused = web.post("/admin/flavors", {"name": name, "vcpus": "1", "ram": "64",
                                          "disk": "1"})
    assert refused.status_code == 403
    assert not [f for f in cloud.openstack("flavor", "list", "--all", "-f", "json")
                if f["Name"] == name]
    project = unique("dashmemproj")
    assert web.post("/admin/projects", {"name": project}).status_code == 403
    assert web.post("/admin/roles", {"name": project}).status_code == 403
    assert project not in {r["Name"] for r in cloud.openstack("role", "list", "-f", "json")}
    assert project not in {p["Name"] for p in cloud.openstack("project", "list", "-f", "json")}


def test_operator_pages_render_for_the_admin(cloud: Cloud) -> None:
    admin = WebUser(cloud)
    try:
        admin.login_as("admin")
        for path in OPERATOR_PAGES:
            resp = admin.client.get(D + path)
            assert resp.status_code == 200, (path, resp.text[-500:])
        assert "Operator overview" in admin.client.get(f"{D}/admin").text
    finally:
        admin.close()


def test_volume_create_show_delete_and_a_bad_size(cloud: Cloud, web: WebUser,
                                                  member: str) -> None:
    name = unique("dashvol")
    bad = web.post("/volumes", {"name": name, "size": "lots"})
    assert bad.status_code == 400
    assert "Size (GB) must be a whole number of at least 1, not &#39;lots&#39;" in bad.text
    assert web.post("/volumes", {"name": name, "size": "1"}, csrf=None).status_code == 403
    assert cloud.openstack("volume", "list", "-f", "json", user=member) == []
    assert web.post("/volumes", {"name": name, "size": "1",
                                 "description": "from the dashboard"}).status_code == 303
    made = cloud.openstack("volume", "show", name, "-f", "json", user=member)
    assert made["size"] == 1 and made["description"] == "from the dashboard"
    assert name in web.client.get(f"{D}/volumes").text
    shown = web.client.get(f"{D}/volumes/{made['id']}")
    assert shown.status_code == 200 and made["id"] in shown.text
    assert web.post(f"/volumes/{made['id']}/delete", {}).status_code == 303
    assert cloud.openstack("volume", "list", "-f", "json", user=member) == []


def test_another_projects_volume_is_not_found(cloud: Cloud, web: WebUser) -> None:
    theirs = cloud.openstack("volume", "create", "--size", "1", unique("dashadminvol"),
                             "-f", "json")
    try:
        shown = web.client.get(f"{D}/volumes/{theirs['id']}")
        assert shown.status_code == 404 and "Not found (404)" in shown.text
        assert web.post(f"/volumes/{theirs['id']}/delete", {}).status_code == 404
        assert cloud.openstack("volume", "show", theirs["id"], "-f", "json")["id"] == \
            theirs["id"]
    finally:
        cloud.openstack("volume", "delete", theirs["id"])


STACK = {"heat_template_version": "2018-08-31",
         "resources": {"secret": {"type": "OS::Heat::RandomString",
                                  "properties": {"length": 8}}}}


def stack_status(client: object, url: str) -> str | None:
    resp = client.get(url, follow_redirects=True)  # type: ignore[attr-defined]
    return None if resp.status_code == 404 else resp.json()["stack"]["stack_status"]


def test_stack_list_show_and_delete(cloud: Cloud, web: WebUser, member: str) -> None:
    project_id = cloud.openstack("project", "show", cloud.users[member]["project"],
                                 "-f", "json")["id"]
    name = unique("dashstack")
    base = f"/orchestration/v1/{project_id}/stacks"
    with cloud.http(cloud.token(member)) as client:
        made = client.post(base, json={"stack_name": name, "template": STACK})
        assert made.status_code == 201, made.text
        stack_id = made.json()["stack"]["id"]
        try:
            assert name in web.client.get(f"{D}/stacks").text
            page = web.client.get(f"{D}/stacks/{stack_id}")
            assert page.status_code == 200, page.text[-500:]
            assert "OS::Heat::RandomString" in page.text  # its resource
            assert "Stack CREATE started" in page.text  # its first event
            missing = web.client.get(f"{D}/stacks/{uuid.uuid4()}")
            assert missing.status_code == 404 and "could not be found" in missing.text
            assert web.post(f"/stacks/{stack_id}/delete", {}).status_code == 303
        finally:
            deadline = time.monotonic() + 30
            while stack_status(client, f"{base}/{stack_id}") not in (None, "DELETE_COMPLETE"):
                assert time.monotonic() < deadline, "the stack was not deleted"
                time.sleep(0.1)


def test_operator_makes_and_removes_a_project_a_user_and_a_flavor(cloud: Cloud) -> None:
    admin = WebUser(cloud)
    project, user, flavor = unique("dashopproj"), unique("dashopuser"), unique("dashopflv")
    try:
        admin.login_as("admin")
        assert admin.post("/admin/projects", {"name": project}).status_code == 303
        made = cloud.openstack("project", "show", project, "-f", "json")
        member_role = cloud.openstack("role", "show", "member", "-f", "json")["id"]
        no_password = admin.post("/admin/users", {"name": user, "project": made["id"]})
        assert no_password.status_code == 400 and "needs a password" in no_password.text
        assert admin.post("/admin/users", {"name": user, "password": "pw-" + user,
                                           "project": made["id"],
                                           "role": member_role}).status_code == 303
        assigned = cloud.openstack("role", "assignment", "list", "--user", user,
                                   "--project", project, "--names", "-f", "json")
        assert [a["Role"] for a in assigned] == ["member"]
        bad = admin.post("/admin/flavors", {"name": flavor, "vcpus": "1", "ram": "-5",
                                            "disk": "1"})
        assert bad.status_code == 400 and "RAM (MiB) must be a whole number" in bad.text
        assert admin.post("/admin/flavors", {"name": flavor, "vcpus": "2", "ram": "128",
                                             "disk": "3"}).status_code == 303
        shown = cloud.openstack("flavor", "show", flavor, "-f", "json")
        assert (shown["vcpus"], shown["ram"], shown["disk"]) == (2, 128, 3)
        assert flavor in admin.client.get(f"{D}/admin/flavors").text
        users = {u["Name"]: u["ID"] for u in cloud.openstack("user", "list", "-f", "json")}
        assert admin.post(f"/admin/users/{users[user]}/delete", {}).status_code == 303
        assert admin.post(f"/admin/flavors/{shown['id']}/delete", {}).status_code == 303
        assert admin.post(f"/admin/projects/{made['id']}/delete", {}).status_code == 303
    finally:
        admin.close()
    assert user not in {u["Name"] for u in cloud.openstack("user", "list", "-f", "json")}
    assert project not in {p["Name"] for p in cloud.openstack("project", "list", "-f", "json")}
    assert flavor not in {f["Name"] for f in cloud.openstack("flavor", "list", "--all",
                                                             "-f", "json")}


def test_console_of_an_unknown_server_is_not_found(web: WebUser) -> None:
    assert web.client.get(f"{D}/instances/{uuid.uuid4()}/console").status_code == 404
    assert web.client.get(f"{D}/instances/{uuid.uuid4()}/console/events").status_code == 404


def assignments(cloud: Cloud, user: str) -> list[str]:
    found = cloud.openstack("role", "assignment", "list", "--user", user, "--names",
                            "-f", "json")
    return sorted(f"{a['Role']}@{a['Project'].split('@')[0]}" for a in found)


def test_operator_makes_grants_revokes_and_deletes_a_role(cloud: Cloud, member: str) -> None:
    # A user of its own: revoking a grant revokes the user's tokens issued in that second,
    # which would log the module's member out of the next test.
    user = unique("dashrolu")
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    try:
        grant_and_revoke(cloud, user, cloud.users[member]["project"])
    finally:
        cloud.openstack("user", "delete", user)


def grant_and_revoke(cloud: Cloud, user: str, project: str) -> None:
    admin, role = WebUser(cloud), unique("dashrole")
    before = assignments(cloud, user)
    try:
        admin.login_as("admin")
        empty = admin.post("/admin/roles", {"name": "  "})
        assert empty.status_code == 400 and "A role needs a name." in empty.text
        assert admin.post("/admin/roles", {"name": role}, csrf="forged").status_code == 403
        assert role not in {r["Name"] for r in cloud.openstack("role", "list", "-f", "json")}
        assert admin.post("/admin/roles", {"name": role,
                                           "description": "from the dashboard"}).status_code \
            == 303
        made = cloud.openstack("role", "show", role, "-f", "json")
        assert made["description"] == "from the dashboard"
        duplicate = admin.post("/admin/roles", {"name": role})
        assert duplicate.status_code == 409 and "Duplicate entry" in duplicate.text
        ids = {"user": cloud.openstack("user", "show", user, "-f", "json")["id"],
               "project": cloud.openstack("project", "show", project, "-f", "json")["id"],
               "role": made["id"]}
        half = admin.post("/admin/roles/grant", {"user": ids["user"], "role": ids["role"]})
        assert half.status_code == 400 and "Choose a project:" in half.text
        wrong = admin.post("/admin/roles/grant", {**ids, "project": uuid.uuid4().hex})
        assert wrong.status_code == 404
        assert assignments(cloud, user) == before
        assert admin.post("/admin/roles/grant", ids).status_code == 303
        assert assignments(cloud, user) == sorted([*before, f"{role}@{project}"])
        page = admin.client.get(f"{D}/admin/roles").text
        assert f'Revoke {role} on {project} from {user}' in page
        assert admin.post("/admin/roles/revoke", ids).status_code == 303
        assert assignments(cloud, user) == before
        builtin = cloud.openstack("role", "show", "member", "-f", "json")["id"]
        kept = admin.post(f"/admin/roles/{builtin}/delete", {})
        assert kept.status_code == 403 and "cannot be deleted" in kept.text
        assert admin.post(f"/admin/roles/{made['id']}/delete", {}).status_code == 303
    finally:
        admin.close()
    assert role not in {r["Name"] for r in cloud.openstack("role", "list", "-f", "json")}


def quota_of(cloud: Cloud, path: str) -> dict:
    with cloud.http(cloud.token()) as client:
        resp = client.get(path)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_quotas_shown_to_the_member_and_set_by_the_operator(cloud: Cloud, web: WebUser,
                                                            member: str) -> None:
    project_id = cloud.openstack("project", "show", cloud.users[member]["project"],
                                 "-f", "json")["id"]
    compute = f"/compute/v2.1/os-quota-sets/{project_id}"
    network = f"/network/v2.0/quotas/{project_id}"
    page = web.client.get(f"{D}/quotas")
    assert page.status_code == 200
    for title in ("Compute", "Network", "Block storage", "VCPUs", "Floating IPs"):
        assert f">{title}<" in page.text, title
    refused = web.post(f"/admin/quotas/{project_id}/compute", {"cores": "1000"})
    assert refused.status_code == 403
    before = quota_of(cloud, compute)["quota_set"]
    admin = WebUser(cloud)
    try:
        admin.login_as("admin")
        shown = admin.client.get(f"{D}/admin/quotas", params={"project": project_id})
        assert shown.status_code == 200 and f'name="cores" value="{before["cores"]}"' in \
            shown.text
        bad = admin.post(f"/admin/quotas/{project_id}/compute",
                         {"instances": "3", "cores": "lots"})
        assert bad.status_code == 400
        assert "VCPUs: the limit must be a whole number from -1" in bad.text
        assert admin.post(f"/admin/quotas/{project_id}/nova", {"cores": "1"}).status_code \
            == 404
        assert admin.post(f"/admin/quotas/{project_id}/compute", {"cores": "3"},
                          csrf=None).status_code == 403
        assert quota_of(cloud, compute)["quota_set"] == before
        made = admin.post(f"/admin/quotas/{project_id}/compute",
                          {"instances": "3", "cores": "-1"})
        assert made.status_code == 303
        assert made.headers["location"].endswith(f"/admin/quotas?project={project_id}")
        after = quota_of(cloud, compute)["quota_set"]
        assert (after["instances"], after["cores"]) == (3, -1)
        assert admin.post(f"/admin/quotas/{project_id}/network",
                          {"floatingip": "2"}).status_code == 303
        assert quota_of(cloud, network)["quota"]["floatingip"] == 2
        assert "3 of 3" not in web.client.get(f"{D}/quotas").text  # nothing used yet
        assert ">3<" in web.client.get(f"{D}/quotas").text
        missing = admin.client.get(f"{D}/admin/quotas", params={"project": "nope"})
        assert missing.status_code == 404
    finally:
        admin.close()
        with cloud.http(cloud.token()) as client:
            assert client.delete(compute).status_code == 202
            assert client.delete(network).status_code == 204
    assert quota_of(cloud, compute)["quota_set"] == before


def test_the_cluster_map_draws_nodes_and_streams_its_html(cloud: Cloud) -> None:
    admin = WebUser(cloud)
    try:
        admin.login_as("admin")
        page = admin.client.get(f"{D}/admin/map")
        assert page.status_code == 200 and '<svg class="map"' in page.text
        assert "Changes since this page opened" in page.text
        with admin.client.stream("GET", f"{D}/admin/map/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    html = json.loads(line[6:])["html"]
                    assert '<svg class="map"' in html and "controller" in html
                    break
    finally:
        admin.close()


def test_the_menu_offers_stacks_only_while_the_catalog_has_orchestration(
        cloud: Cloud, web: WebUser) -> None:
    (heat,) = [s["ID"] for s in cloud.openstack("service", "list", "-f", "json")
               if s["Type"] == "orchestration"]
    assert f'href="{D}/stacks"' in web.client.get(D + "/").text
    cloud.openstack("service", "set", "--disable", heat)
    try:
        menu = web.client.get(D + "/").text
        assert f'href="{D}/stacks"' not in menu and f'href="{D}/volumes"' in menu
    finally:
        cloud.openstack("service", "set", "--enable", heat)
    assert f'href="{D}/stacks"' in web.client.get(D + "/").text


def test_member_allocates_and_releases_a_floating_ip(cloud: Cloud, web: WebUser,
                                                     member: str) -> None:
    public = cloud.openstack("network", "show", "public", "-f", "json")["id"]
    page = web.client.get(f"{D}/floating-ips")
    assert f'<option value="{public}">public</option>' in page.text
    assert web.post("/floating-ips", {"network": public}, csrf=None).status_code == 403
    assert cloud.openstack("floating ip", "list", "-f", "json", user=member) == []
    assert web.post("/floating-ips", {"network": public}).status_code == 303
    (made,) = cloud.openstack("floating ip", "list", "-f", "json", user=member)
    address = made["Floating IP Address"]
    assert f'aria-label="Release {address}"' in web.client.get(f"{D}/floating-ips").text
    assert web.post(f"/floating-ips/{made['ID']}/delete", {}).status_code == 303
    assert cloud.openstack("floating ip", "list", "-f", "json", user=member) == []


def test_the_flavor_page_shows_extra_specs(cloud: Cloud) -> None:
    name = unique("dashspec")
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--property",
                             "hw:cpu_policy=dedicated", name, "-f", "json")["id"]
    admin = WebUser(cloud)
    try:
        admin.login_as("admin")
        page = admin.client.get(f"{D}/admin/flavors").text
        row = page[page.index(f'<tr data-id="{flavor}">'):]
        row = row[:row.index("</tr>")]
        assert "<code>hw:cpu_policy=dedicated</code>" in row
    finally:
        admin.close()
        cloud.openstack("flavor", "delete", flavor)


def test_volumes_are_hidden_and_explained_without_block_storage(cloud: Cloud,
                                                                 web: WebUser) -> None:
    block = [s["ID"] for s in cloud.openstack("service", "list", "-f", "json")
             if s["Type"] in ("block-storage", "volumev3")]
    assert block and f'href="{D}/volumes"' in web.client.get(D + "/").text
    for service in block:
        cloud.openstack("service", "set", "--disable", service)
    try:
        menu = web.client.get(D + "/").text
        assert f'href="{D}/volumes"' not in menu and f'href="{D}/instances"' in menu
        for path in ("/volumes", f"/volumes/{uuid.uuid4()}"):
            page = web.client.get(D + path)
            assert page.status_code == 404, (path, page.text[-500:])
            assert "catalog has no block storage service" in page.text
            assert f'href="{D}/volumes"' not in page.text
        refused = web.post("/volumes", {"name": unique("dashnovol"), "size": "1"})
        assert refused.status_code == 404
        # An instance's page leaves out its volume section.
        assert web.client.get(D + "/instances").status_code == 200
    finally:
        for service in block:
            cloud.openstack("service", "set", "--enable", service)
    assert f'href="{D}/volumes"' in web.client.get(D + "/").text
    assert web.client.get(D + "/volumes").status_code == 200


def test_member_cannot_delete_another_projects_security_group_rule(
        cloud: Cloud, web: WebUser, member: str) -> None:
    group = cloud.openstack("security group", "create", unique("dashadmsg"), "-f", "json")
    try:
        rule = cloud.openstack("security group rule", "create", "--protocol", "tcp",
                               "--dst-port", "443", group["id"], "-f", "json")
        # As in Neutron: another project's rule is not found (404), not forbidden.
        refused = web.post(f"/security-group-rules/{rule['id']}/delete", {})
        assert refused.status_code == 404, refused.text[-500:]
        with cloud.http(cloud.token(member)) as client:
            direct = client.delete(f"/network/v2.0/security-group-rules/{rule['id']}")
        assert direct.status_code == 404, direct.text
        assert direct.json()["NeutronError"]["type"] == "SecurityGroupRuleNotFound", direct.text
        assert rule["id"] in {r["ID"] for r in cloud.openstack(
            "security group rule", "list", group["id"], "-f", "json")}
    finally:
        cloud.openstack("security group", "delete", group["id"])
