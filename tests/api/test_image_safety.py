"""Image safety at the API: unsafe data refused at upload, one visibility rule for boot, bounds.

Uploads: a qcow2 with a backing file or a data file, a vmdk naming a host file,
a raw that is really qcow2 are refused with 400; the image ends 'killed' (Glance's
status for data that failed), and no file is left in the store.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cloud import Cloud, CommandFailed, unique

OCTET = {"Content-Type": "application/octet-stream"}
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
V = "/compute/v2.1"
NONE_NET = {"OpenStack-API-Version": "compute 2.37"}
PASSWORD = "Safety_pw_123"


def new_user(cloud: Cloud) -> tuple[str, str]:
    project, user = unique("safeproj"), unique("safeuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", PASSWORD, "--project", project, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, PASSWORD, project)
    return user, project_id


@pytest.fixture(scope="module")
def owner(cloud: Cloud) -> Iterator[httpx.Client]:
    user, _ = new_user(cloud)
    with cloud.http(cloud.token(user)) as client:
        yield client


def qemu_img(*args: str | Path) -> None:
    subprocess.run(["qemu-img", "create", "-q", *map(str, args)], check=True)


def bad_images(tmp: Path) -> dict[str, tuple[str, Path, str]]:
    """name: (declared disk_format, file, expected message)."""
    qemu_img("-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", tmp / "backing.qcow2", "1M")
    qemu_img("-f", "qcow2", "-o", f"data_file={tmp / 'data.raw'}", tmp / "datafile.qcow2",
             "1M")
    (tmp / "host.vmdk").write_text(
        '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
        'RW 2048 FLAT "/var/lib/atwill-agent/node-key.pem" 0\n')
    qemu_img("-f", "qcow2", tmp / "really.qcow2", "1M")
    return {"backing": ("qcow2", tmp / "backing.qcow2", "qcow2 image has a backing file"),
            "datafile": ("qcow2", tmp / "datafile.qcow2", "external data file"),
            "hostextent": ("vmdk", tmp / "host.vmdk", "extents outside the image"),
            "rawqcow2": ("raw", tmp / "really.qcow2",
                         "Image disk_format raw does not match the data, which is qcow2")}


def store_files(cloud: Cloud) -> list[str]:
    root = cloud.state_dir / "images"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def create(client: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"name": unique("img"), "container_format": "bare", **fields}
    return client.post("/image/v2/images", json=body)


@pytest.mark.parametrize("case", ["backing", "datafile", "hostextent", "rawqcow2"])
def test_unsafe_upload_is_refused_and_killed(cloud: Cloud, owner: httpx.Client,
                                             tmp_path: Path, case: str) -> None:
    declared, path, message = bad_images(tmp_path)[case]
    made = create(owner, disk_format=declared)
    assert made.status_code == 201, made.text
    image_id = made.json()["id"]
    resp = owner.put(f"/image/v2/images/{image_id}/file", content=path.read_bytes(),
                     headers=OCTET)
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]["message"]
    shown = owner.get(f"/image/v2/images/{image_id}").json()
    assert shown["status"] == "killed" and shown["size"] is None
    assert image_id not in store_files(cloud)
    assert not [n for n in store_files(cloud) if image_id in n]
    # Killed is final: the data cannot be retried into the same image; it can be deleted.
    again = owner.put(f"/image/v2/images/{image_id}/file", content=b"x", headers=OCTET)
    assert again.status_code == 409
    assert owner.delete(f"/image/v2/images/{image_id}").status_code == 204


def test_cli_upload_of_a_backing_file_qcow2_fails_clearly(cloud: Cloud, tmp_path: Path
                                                          ) -> None:
    _, path, _ = bad_images(tmp_path)["backing"]
    name = unique("clibad")
    before = store_files(cloud)
    with pytest.raises(CommandFailed, match="qcow2 image has a backing file"):
        cloud.openstack("image", "create", "--file", str(path), "--disk-format", "qcow2",
                        "--container-format", "bare", name, "-f", "json")
    # openstacksdk deletes an image whose upload failed; whatever is left is killed.
    left = cloud.openstack("image", "list", "--name", name, "--long", "-f", "json")
    assert all(row["Status"] == "killed" for row in left)
    assert store_files(cloud) == before


@pytest.mark.parametrize(("fmt", "options"), [("qcow2", ()), ("raw", ()),
                                              ("vmdk", ("-o", "subformat=streamOptimized"))])
def test_safe_images_still_upload(cloud: Cloud, owner: httpx.Client, tmp_path: Path,
                                  fmt: str, options: tuple[str, ...]) -> None:
    path = tmp_path / f"good.{fmt}"
    qemu_img("-f", fmt, *options, path, "1M")
    image_id = create(owner, disk_format=fmt).json()["id"]
    resp = owner.put(f"/image/v2/images/{image_id}/file", content=path.read_bytes(),
                     headers=OCTET)
    assert resp.status_code == 204, resp.text
    assert owner.get(f"/image/v2/images/{image_id}").json()["status"] == "active"
    assert image_id in store_files(cloud)
    assert owner.delete(f"/image/v2/images/{image_id}").status_code == 204


# Item 7: booting follows the image service's visibility rule ------------------------


@pytest.fixture(scope="module")
def sharing(cloud: Cloud, owner: httpx.Client) -> Iterator[dict[str, Any]]:
    member_user, member_project = new_user(cloud)
    flavor = cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                             unique("safeflv"), "-f", "json")["id"]
    with cloud.http(cloud.token(member_user)) as member, cloud.http(cloud.token()) as admin:
        yield {"member": member, "project": member_project, "flavor": flavor, "admin": admin}


def active_image(client: httpx.Client, visibility: str) -> str:
    image_id = create(client, disk_format="raw", visibility=visibility).json()["id"]
    resp = client.put(f"/image/v2/images/{image_id}/file", content=b"\0" * 4096,
                      headers=OCTET)
    assert resp.status_code == 204, resp.text
    return image_id


def boot(client: httpx.Client, flavor: str, image_id: str) -> httpx.Response:
    resp = client.post(f"{V}/servers", headers=NONE_NET, json={"server": {
        "name": unique("safesrv"), "flavorRef": flavor, "imageRef": image_id,
        "networks": "none"}})
    if resp.status_code == 202:
        client.delete(f"{V}/servers/{resp.json()['server']['id']}")
    return resp


def share(owner: httpx.Client, member: httpx.Client, image_id: str, project: str,
          status: str | None) -> None:
    resp = owner.post(f"/image/v2/images/{image_id}/members", json={"member": project})
    assert resp.status_code == 200, resp.text
    if status is not None:
        resp = member.put(f"/image/v2/images/{image_id}/members/{project}",
                          json={"status": status})
        assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(("setup", "allowed"), [
    ("own-private", True), ("other-private", False), ("public", True), ("community", True),
    ("shared-pending", True), ("shared-accepted", True), ("shared-rejected", True),
    ("shared-not-member", False), ("member-removed", False), ("unshared-to-private", False),
])
def test_boot_follows_image_visibility(owner: httpx.Client, sharing: dict[str, Any],
                                       setup: str, allowed: bool) -> None:
    member, project = sharing["member"], sharing["project"]
    if setup == "own-private":
        image_id = active_image(member, "private")
    elif setup.startswith("shared") or setup in ("member-removed", "unshared-to-private"):
        image_id = active_image(owner, "shared")
        if setup != "shared-not-member":
            status = setup.removeprefix("shared-") if setup.startswith("shared") else \
                "accepted"
            share(owner, member, image_id, project, status if status != "pending" else None)
        if setup == "member-removed":
            assert owner.delete(f"/image/v2/images/{image_id}/members/{project}"
                                ).status_code == 204
        if setup == "unshared-to-private":
            resp = owner.patch(f"/image/v2/images/{image_id}", headers=PATCH, json=[
                {"op": "replace", "path": "/visibility", "value": "private"}])
            assert resp.status_code == 200, resp.text
    else:
        # Only an admin may publicize an image (Glance's default policy).
        image_id = active_image(sharing["admin"] if setup == "public" else owner,
                                setup.removeprefix("other-"))
    # Boot answers exactly as GET /v2/images/{id} does for the same caller.
    seen = member.get(f"/image/v2/images/{image_id}").status_code
    assert seen == (200 if allowed else 404)
    resp = boot(member, sharing["flavor"], image_id)
    if allowed:
        assert resp.status_code == 202, resp.text
    else:
        assert resp.status_code == 400, resp.text
        assert f"Image {image_id} could not be found." in resp.text


# Item 5: bounds on properties and tags --------------------------------------------


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({f"p{i}": "v" for i in range(129)}, 413, "at most 128 properties"),
    ({"k" * 256: "v"}, 400, "Invalid property name"),
    ({"key": "v" * 256}, 400, "at most 255 characters"),
    ({"tags": [f"t{i}" for i in range(129)]}, 413, "at most 128 tags"),
    ({"tags": ["t" * 256]}, 400, "Invalid tag"),
])
def test_create_bounds(cloud: Cloud, owner: httpx.Client, fields: dict[str, Any],
                       status: int, message: str) -> None:
    before = cloud.db_snapshot()
    resp = create(owner, disk_format="raw", **fields)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]
    assert cloud.db_snapshot() == before


def test_patch_bounds(cloud: Cloud, owner: httpx.Client) -> None:
    image_id = create(owner, disk_format="raw", **{f"p{i}": "v" for i in range(128)}
                      ).json()["id"]
    before = cloud.db_snapshot()
    for ops, status in (([{"op": "add", "path": "/one-more", "value": "v"}], 413),
                        ([{"op": "add", "path": "/p0", "value": "v" * 256}], 400)):
        resp = owner.patch(f"/image/v2/images/{image_id}", headers=PATCH, json=ops)
        assert resp.status_code == status, resp.text
    assert cloud.db_snapshot() == before
    resp = owner.patch(f"/image/v2/images/{image_id}", headers=PATCH,
                       json=[{"op": "replace", "path": "/p0", "value": "w" * 255}])
    assert resp.status_code == 200 and resp.json()["p0"] == "w" * 255
