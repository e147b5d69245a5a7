"""Compute acceptance as admin through the real openstack CLI and openstacksdk."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cloud import Cloud, unique

SEED = [("m1.16xlarge", 262144, 160, 96), ("m1.8xlarge", 131072, 80, 48),
        ("m1.4xlarge", 65536, 40, 24), ("m1.2xlarge", 32768, 40, 12),
        ("m1.xlarge", 16384, 30, 6), ("m1.large", 8192, 20, 3), ("m1.medium", 4096, 20, 2),
        ("m1.small", 2048, 20, 1), ("g1.2xlarge", 32768, 40, 12),
        ("g1.4xlarge", 65536, 40, 24)]


def test_version_discovery(cloud: Cloud) -> None:
    with cloud.http() as client:
        listing = client.get("/compute/")
        version = client.get("/compute/v2.1")
    assert listing.status_code == 200
    assert [v["id"] for v in listing.json()["versions"]] == ["v2.0", "v2.1"]
    body = version.json()["version"]
    assert (body["status"], body["version"], body["min_version"]) == ("CURRENT", "2.96", "2.1")
    assert body["links"][0]["href"].endswith("/compute/v2.1/") and body["media-types"]


def test_seed_flavors(cloud: Cloud) -> None:
    for name, ram, disk, vcpus in SEED:
        cloud.openstack("flavor", "create", "--ram", str(ram), "--disk", str(disk),
                        "--vcpus", str(vcpus), "--public", name)
    cloud.openstack("flavor", "set", "g1.2xlarge", "--property", "pci_passthrough:alias=K20m:1")
    rows = {f["Name"]: f for f in cloud.openstack("flavor", "list", "-f", "json")}
    for name, ram, disk, vcpus in SEED:
        assert (rows[name]["RAM"], rows[name]["Disk"], rows[name]["VCPUs"]) == (ram, disk, vcpus)
        assert rows[name]["Is Public"] is True
    shown = cloud.openstack("flavor", "show", "g1.2xlarge", "-f", "json")
    assert shown["properties"] == {"pci_passthrough:alias": "K20m:1"}
    again = cloud.openstack("flavor", "create", "--ram", "1", "--vcpus", "1", "m1.small",
                            check=False)
    assert again.returncode != 0 and "409" in again.stderr
    cloud.openstack("flavor", "unset", "g1.2xlarge", "--property", "pci_passthrough:alias")
    assert cloud.openstack("flavor", "show", "g1.2xlarge", "-f", "json")["properties"] == {}
    for name, *_ in SEED:
        cloud.openstack("flavor", "delete", name)
    left = {f["Name"] for f in cloud.openstack("flavor", "list", "--all", "-f", "json")}
    assert not left & {name for name, *_ in SEED}


def test_private_flavor_access(cloud: Cloud) -> None:
    name, project = unique("private"), unique("fabric")
    cloud.openstack("project", "create", project)
    cloud.openstack("flavor", "create", "--ram", "1024", "--vcpus", "1", "--private", name)
    cloud.openstack("flavor", "set", "--project", project, name)
    shown = cloud.openstack("flavor", "show", name, "-f", "json")
    project_id = cloud.openstack("project", "show", project, "-f", "json")["id"]
    assert shown["os-flavor-access:is_public"] is False
    assert shown["access_project_ids"] == [project_id]
    public = {f["Name"] for f in cloud.openstack("flavor", "list", "--public", "-f", "json")}
    private = {f["Name"] for f in cloud.openstack("flavor", "list", "--private", "-f", "json")}
    assert name in private and name not in public
    cloud.openstack("flavor", "unset", "--project", project, name)
    assert cloud.openstack("flavor", "show", name, "-f", "json")["access_project_ids"] == []
    cloud.openstack("flavor", "delete", name)


def _ssh_keygen(tmp_path: Path, kind: str, bits: str | None) -> Path:
    key = tmp_path / f"id_{kind}"
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)]
    subprocess.run(args + (["-b", bits] if bits else []), check=True)
    return key.with_suffix(".pub")


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", None), ("rsa", "2048"),
                                            ("ecdsa", "256"), ("ecdsa", "521")])
def test_keypair_import(cloud: Cloud, tmp_path: Path, kind: str, bits: str | None) -> None:
    public = _ssh_keygen(tmp_path, kind, bits)
    name = unique(f"kp-{kind}")
    created = cloud.openstack("keypair", "create", "--public-key", str(public), name,
                              "-f", "json")
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(public)],
                              check=True, capture_output=True, text=True).stdout.split()[1]
    assert created["fingerprint"] == expected.removeprefix("MD5:")
    shown = cloud.openstack("keypair", "show", name, "-f", "json")
    assert shown["fingerprint"] == created["fingerprint"] and shown["type"] == "ssh"
    assert cloud.openstack("keypair", "show", "--public-key", name).strip() == \
        public.read_text().strip()
    cloud.openstack("keypair", "delete", name)


def test_keypair_generated_and_garbage(cloud: Cloud, tmp_path: Path) -> None:
    name = unique("kp-gen")
    private = cloud.openstack("keypair", "create", name)
    assert "BEGIN OPENSSH PRIVATE KEY" in private
    assert name in {k["Name"] for k in cloud.openstack("keypair", "list", "-f", "json")}
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-rsa bm90IGEga2V5 nobody\n")
    proc = cloud.openstack("keypair", "create", "--public-key", str(bad), unique("kp"),
                           check=False)
    assert proc.returncode != 0 and "400" in proc.stderr
    cloud.openstack("keypair", "delete", name)
    assert cloud.openstack("keypair", "show", name, check=False).returncode != 0


def test_quota_set_show_and_limits(cloud: Cloud) -> None:
    project = unique("fabric")
    cloud.openstack("project", "create", project)
    cloud.openstack("quota", "set", project, "--cores", "200", "--instances", "50",
                    "--ram", "1048576")
    rows = {r["Resource"]: r["Limit"] for r in cloud.openstack("quota", "show", project,
                                                                "-f", "json")}
    assert (rows["cores"], rows["instances"], rows["ram"]) == (200, 50, 1048576)
    usage = {r["Resource"]: r for r in cloud.openstack("quota", "show", "--usage", project,
                                                       "-f", "json")}
    assert usage["cores"]["In Use"] == 0
    limits = {r["Name"]: r["Value"] for r in cloud.openstack(
        "limits", "show", "--absolute", "--project", project, "-f", "json")}
    assert limits["max_total_cores"] == 200 and limits["max_total_instances"] == 50
    assert limits["max_total_ram_size"] == 1048576 and limits["total_ram_used"] == 0
    own = {r["Name"]: r["Value"] for r in cloud.openstack("limits", "show", "--absolute",
                                                          "-f", "json")}
    assert own["max_total_keypairs"] == 100
    defaults = {r["Resource"]: r["Limit"] for r in cloud.openstack(
        "quota", "show", "--default", project, "-f", "json")}
    assert defaults["cores"] == 20


# openstacksdk warns about its own optional dependencies on import; that is not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_sdk(cloud: Cloud) -> None:
    conn = cloud.sdk()
    name = unique("sdk")
    flavor = conn.compute.create_flavor(name=name, ram=512, vcpus=1, disk=1, description="d")
    assert flavor.description == "d" and flavor.extra_specs == {}
    conn.compute.create_flavor_extra_specs(flavor, {"hw:cpu_policy": "dedicated"})
    assert conn.compute.fetch_flavor_extra_specs(flavor).extra_specs == {
        "hw:cpu_policy": "dedicated"}
    assert name in {f.name for f in conn.compute.flavors()}
    assert conn.compute.find_flavor(name).id == flavor.id
    keypair = conn.compute.create_keypair(name=name)
    assert keypair.private_key and keypair.fingerprint.count(":") == 15
    assert name in {k.name for k in conn.compute.keypairs()}
    conn.compute.delete_keypair(keypair)
    limits = conn.compute.get_limits()
    assert limits.absolute.total_cores_used == 0
    project_id = conn.current_project_id
    quota = conn.compute.get_quota_set(project_id, usage=True)
    assert quota.usage["cores"] == 0 and quota.cores >= 1
    assert isinstance(list(conn.compute.hypervisors()), list)
    assert all(z.name for z in conn.compute.availability_zones())
    conn.compute.delete_flavor(flavor)
    conn.close()
