"""The image API through the real openstack CLI and openstacksdk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.cloud import Cloud, CommandFailed, unique
from tests.imagedata import qcow2_bytes

PASSWORD = "Image_pw_123"
# openstacksdk warns about its own deprecated internals (InfluxDB support,
# _compute_attributes) during ordinary calls; those are not ours to fix.
SDK_WARNINGS = (pytest.mark.filterwarnings("ignore::DeprecationWarning"),
                pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"))


def sdk_test(func):  # noqa: ANN001, ANN201
    for mark in SDK_WARNINGS:
        func = mark(func)
    return func


def new_project_user(cloud: Cloud, role: str = "member") -> tuple[str, str]:
    """A project with one user holding role in it; returns (user, project id)."""
    project, user = unique("imgproj"), unique("imguser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", PASSWORD, "--project", project, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, role)
    cloud.add_user(user, PASSWORD, project)
    return user, project_id


@pytest.fixture(scope="module")
def alice(cloud: Cloud) -> tuple[str, str]:
    return new_project_user(cloud)


@pytest.fixture(scope="module")
def bob(cloud: Cloud) -> tuple[str, str]:
    return new_project_user(cloud)


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.qcow2"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def names(cloud: Cloud, user: str = "admin", *args: str) -> set[str]:
    return {row["Name"] for row in cloud.openstack("image", "list", *args, "-f", "json",
                                                     user=user)}


def test_create_show_save_set_delete(cloud: Cloud, data_file: Path, tmp_path: Path) -> None:
    name = unique("cli")
    data_file.write_bytes(qcow2_bytes(data_file.stat().st_size))  # uploads are inspected
    image = cloud.openstack("image", "create", "--file", str(data_file), "--disk-format",
                            "qcow2", "--container-format", "bare", "--property",
                            "hw_video_model=qxl", "--public", name, "-f", "json")
    assert image["status"] == "active" and image["visibility"] == "public"
    assert image["size"] == data_file.stat().st_size
    assert image["checksum"] == hashlib.md5(data_file.read_bytes()).hexdigest()
    assert image["properties"]["hw_video_model"] == "qxl"
    assert name in names(cloud)
    shown = cloud.openstack("image", "show", name, "-f", "json")
    assert shown["id"] == image["id"] and shown["disk_format"] == "qcow2"
    out = tmp_path / "out.img"
    cloud.openstack("image", "save", "--file", str(out), name)
    assert out.read_bytes() == data_file.read_bytes()

    renamed = unique("cli")
    cloud.openstack("image", "set", "--property", "k=v", "--tag", "t", "--name", renamed, name)
    shown = cloud.openstack("image", "show", renamed, "-f", "json")
    assert shown["properties"]["k"] == "v" and shown["tags"] == ["t"]
    cloud.openstack("image", "unset", "--property", "k", "--tag", "t", renamed)
    shown = cloud.openstack("image", "show", renamed, "-f", "json")
    assert "k" not in shown["properties"] and shown["tags"] == []

    cloud.openstack("image", "set", "--protected", renamed)
    failed = cloud.openstack("image", "delete", renamed, check=False)
    assert failed.returncode != 0 and "protected" in failed.stderr
    cloud.openstack("image", "set", "--unprotected", renamed)
    cloud.openstack("image", "delete", renamed)
    assert renamed not in names(cloud)
    assert not (cloud.state_dir / "images" / image["id"]).exists()


def test_visibility_and_sharing(cloud: Cloud, alice: tuple[str, str],
                                bob: tuple[str, str]) -> None:
    (a, _), (b, b_project) = alice, bob
    private, shared, community = unique("priv"), unique("shared"), unique("comm")
    cloud.openstack("image", "create", "--private", private, user=a)
    cloud.openstack("image", "create", "--shared", shared, user=a)
    cloud.openstack("image", "create", "--community", community, user=a)
    assert {private, shared, community} <= names(cloud, a, "--all")
    assert not {private, shared} & names(cloud, b, "--all")
    assert community in names(cloud, b, "--community")
    assert community not in names(cloud, b)
    for image in (private, shared):
        assert cloud.openstack("image", "show", image, user=b, check=False).returncode != 0

    cloud.openstack("image", "add", "project", shared, b_project, user=a)
    members = cloud.openstack("image", "member", "list", shared, "-f", "json", user=a)
    assert [(m["Member ID"], m["Status"]) for m in members] == [(b_project, "pending")]
    shared_id = cloud.openstack("image", "show", shared, "-f", "json", user=a)["id"]
    assert shared not in names(cloud, b)
    assert shared in names(cloud, b, "--member-status", "pending")
    cloud.openstack("image", "set", "--accept", shared_id, user=b)
    assert shared in names(cloud, b)
    assert private not in names(cloud, b, "--all")
    cloud.openstack("image", "remove", "project", shared, b_project, user=a)
    assert shared not in names(cloud, b)


def test_non_admin_cannot_publicize(cloud: Cloud, alice: tuple[str, str]) -> None:
    user, _ = alice
    name = unique("pub")
    failed = cloud.openstack("image", "create", "--public", name, user=user, check=False)
    assert failed.returncode != 0
    assert "403" in failed.stderr and "publicize_image" in failed.stderr
    assert name not in names(cloud, "admin", "--all")
    cloud.openstack("image", "create", "--private", name, user=user)
    with pytest.raises(CommandFailed, match="publicize_image"):
        cloud.openstack("image", "set", "--public", name, user=user)


def test_reader_sees_but_cannot_create(cloud: Cloud, alice: tuple[str, str]) -> None:
    reader, _ = new_project_user(cloud, role="reader")
    public = unique("pubr")
    cloud.openstack("image", "create", "--public", public)
    assert public in names(cloud, reader)
    with pytest.raises(CommandFailed, match="403"):
        cloud.openstack("image", "create", unique("nope"), user=reader)
    with pytest.raises(CommandFailed):
        cloud.openstack("image", "delete", public, user=alice[0])
    assert public in names(cloud)


def test_deactivate_blocks_download_for_members(cloud: Cloud, alice: tuple[str, str],
                                                data_file: Path, tmp_path: Path) -> None:
    user, _ = alice
    name = unique("deact")
    cloud.openstack("image", "create", "--file", str(data_file), "--disk-format", "raw",
                    "--container-format", "bare", name, user=user)
    cloud.openstack("image", "set", "--deactivate", name)
    assert cloud.openstack("image", "show", name, "-f", "json",
                           user=user)["status"] == "deactivated"
    failed = cloud.openstack("image", "save", "--file", str(tmp_path / "x"), name, user=user,
                             check=False)
    # openstacksdk hashes whatever body it gets, so the 403 surfaces as a mismatch.
    assert failed.returncode != 0
    with cloud.http(cloud.token(user)) as client:
        image_id = cloud.openstack("image", "show", name, "-f", "json", user=user)["id"]
        denied = client.get(f"/image/v2/images/{image_id}/file")
    assert denied.status_code == 403 and "deactivated" in denied.json()["error"]["message"]
    cloud.openstack("image", "set", "--activate", name)
    cloud.openstack("image", "save", "--file", str(tmp_path / "y"), name, user=user)
    assert (tmp_path / "y").read_bytes() == data_file.read_bytes()


@sdk_test
def test_sdk_upload_download(cloud: Cloud, tmp_path: Path) -> None:
    conn = cloud.sdk()
    data = os.urandom(2 * 1024 * 1024 + 3)
    image = conn.image.create_image(unique("sdk"), data=data, disk_format="raw",
                                    container_format="bare", hw_rng_model="virtio",
                                    allow_duplicates=True, validate_checksum=True)
    image = conn.image.get_image(image.id)
    assert image.status == "active" and image.size == len(data)
    assert image.hash_algo == "sha512" and image.hash_value == hashlib.sha512(data).hexdigest()
    assert conn.image.download_image(image).content == data
    out = tmp_path / "sdk.img"
    conn.image.download_image(image, output=str(out))
    assert out.read_bytes() == data
    conn.image.add_tag(image, "sdk-tag")
    conn.image.update_image(image, min_ram=512, hw_rng_model="none")
    updated = conn.image.get_image(image.id)
    assert updated.tags == ["sdk-tag"] and updated.min_ram == 512
    assert updated.hw_rng_model == "none"
    found = list(conn.image.images(tag="sdk-tag", hw_rng_model="none"))
    assert [i.id for i in found] == [image.id]
    conn.image.delete_image(image, ignore_missing=False)
    assert conn.image.find_image(image.id) is None


@sdk_test
def test_sdk_paginates_without_repeats(cloud: Cloud) -> None:
    conn = cloud.sdk()
    prefix = unique("page")
    made = {conn.image.create_image(f"{prefix}-{i}", allow_duplicates=True,
                                    disk_format="raw", container_format="bare").id
            for i in range(5)}
    seen = [i.id for i in conn.image.images(limit=2, sort="name:asc")
            if (i.name or "").startswith(prefix)]
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
