"""`atwill apply` and `atwill export` against a real controller, checked with the real
openstack CLI: seed 003's admin setup as a profile, applied twice (the second: no change),
then with one change; export applied back is a no-op; bad files and a failure midway
change nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import BIN, Cloud, unique
from tests.imagedata import qcow2_bytes

GUEST = qcow2_bytes(64 * 1024)  # the images' file, beside the profile


@dataclass
class Names:
    project: str
    user: str
    role: str
    flavor: str
    gpu_flavor: str
    network: str
    subnet: str
    router: str
    gpu_image: str
    image: str


@pytest.fixture(scope="module")
def names() -> Names:
    tag = unique("ap").split("-")[1]
    return Names(f"fabric-{tag}", f"fabric-{tag}", f"fabric-{tag}", f"m1.16xl-{tag}",
                 f"g1.2xl-{tag}", f"net-{tag}", f"sub-{tag}", f"rtr-{tag}",
                 f"fedora.21.gpu-{tag}", f"centos7-{tag}")


def seed_profile(n: Names, cores: int = 200) -> dict:
    """Seed 003's admin script: a project with quotas, a user and role, the flavors (one
    with a PCI alias), public images (one with the seed's properties), a network behind a
    router, the default group opened."""
    return {"version": 1,
            "projects": [{"name": n.project, "description": "GPU fabric", "quotas": {
                "cores": cores, "instances": 50, "floating_ips": 50, "gigabytes": 4096,
                "ram": 1048576}}],
            "roles": [{"name": n.role}],
            "users": [{"name": n.user, "password": "Fabric_123", "default_project": n.project,
                       "roles": [{"project": n.project, "role": n.role},
                                 {"project": n.project, "role": "member"}]},
                      # "openstack role add --project fabric --user admin fabric": the
                      # admin's grants in other projects are left as they are.
                      {"name": "admin", "roles": [{"project": n.project, "role": n.role}]}],
            "flavors": [{"name": n.flavor, "vcpus": 96, "ram": 262144, "disk": 160},
                        {"name": n.gpu_flavor, "vcpus": 12, "ram": 32768, "disk": 40,
                         "extra_specs": {"pci_passthrough:alias": "K20m:1"}}],
            "images": [{"name": n.gpu_image, "file": "guest.qcow2", "disk_format": "qcow2",
                        "container_format": "bare", "visibility": "public",
                        "properties": {"hw_video_model": "qxl", "configure_x": "true"}},
                       {"name": n.image, "file": "guest.qcow2", "disk_format": "qcow2",
                        "container_format": "bare", "visibility": "public"}],
            "networks": [{"name": n.network, "project": n.project, "subnets": [
                {"name": n.subnet, "cidr": "10.77.0.0/24", "dns_nameservers": ["10.0.0.53"]}]}],
            "routers": [{"name": n.router, "project": n.project, "external_gateway": "public",
                         "interfaces": [n.subnet]}],
            "security_groups": [{"name": "default", "project": n.project, "rules": [
                {"direction": "egress", "ethertype": "IPv4"},
                {"direction": "egress", "ethertype": "IPv6"},
                {"protocol": "icmp", "remote_ip_prefix": "0.0.0.0/0"},
                {"protocol": "udp", "port_range_min": 1, "port_range_max": 65535,
                 "remote_ip_prefix": "0.0.0.0/0"},
                {"protocol": "tcp", "port_range_min": 1, "port_range_max": 65535,
                 "remote_ip_prefix": "0.0.0.0/0"}]}]}


def absent(n: Names) -> dict:
    return {"projects": [{"name": n.project, "state": "absent"}],
            "roles": [{"name": n.role, "state": "absent"}],
            "users": [{"name": n.user, "state": "absent"}],
            "flavors": [{"name": f, "state": "absent"} for f in (n.flavor, n.gpu_flavor)],
            "images": [{"name": i, "state": "absent"} for i in (n.gpu_image, n.image)],
            "networks": [{"name": n.network, "project": n.project, "state": "absent",
                          "subnets": [{"name": n.subnet, "state": "absent"}]}],
            "routers": [{"name": n.router, "project": n.project, "state": "absent"}],
            "security_groups": [{"name": "default", "project": n.project,
                                 "state": "absent"}]}


@dataclass
class Runner:
    cloud: Cloud
    tmp: Path

    def write(self, profile: dict | str, name: str = "cloud.yaml") -> Path:
        path = self.tmp / name
        path.write_text(profile if isinstance(profile, str) else yaml.safe_dump(profile))
        return path

    def atwill(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.cloud.clouds_yaml())
        proc = subprocess.run([str(BIN / "atwill"), *args, "--os-cloud", "atwill"],
                              capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def apply(self, profile: dict | str, *flags: str, check: bool = True
              ) -> subprocess.CompletedProcess:
        return self.atwill("apply", str(self.write(profile)), *flags, check=check)


@pytest.fixture(scope="module")
def run(cloud: Cloud, names: Names, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Runner]:
    runner = Runner(cloud, tmp_path_factory.mktemp("apply"))
    (runner.tmp / "guest.qcow2").write_bytes(GUEST)
    try:
        yield runner
    finally:
        runner.apply(absent(names), check=False)


def os_json(cloud: Cloud, *args: str) -> dict | list:
    return cloud.openstack(*args, "-f", "json")


def quota(cloud: Cloud, project: str) -> dict[str, int]:
    """openstack quota show, which lists one {Resource, Limit} row per quota."""
    return {row["Resource"]: row["Limit"] for row in os_json(cloud, "quota", "show", project)}


def test_dry_run_prints_the_plan_and_changes_nothing(run: Runner, names: Names) -> None:
    out = run.apply(seed_profile(names), "--dry-run").stdout
    assert "Plan: 11 to create, 1 to change, 0 to replace, 0 to delete." in out, out
    assert f"+ project {names.project}" in out
    assert f"+ security group {names.project}/default" in out
    found = run.cloud.openstack("project", "show", names.project, check=False)
    assert found.returncode != 0


def test_seed_profile_applies_then_applies_again_without_change(run: Runner,
                                                                names: Names) -> None:
    out = run.apply(seed_profile(names)).stdout
    assert "[12/12]" in out and "Applied: 11 to create, 1 to change" in out, out
    cloud = run.cloud
    project = os_json(cloud, "project", "show", names.project)
    assert project["description"] == "GPU fabric"
    limits = quota(cloud, names.project)
    assert (limits["cores"], limits["instances"], limits["ram"], limits["gigabytes"]) == (
        200, 50, 1048576, 4096)
    image = os_json(cloud, "image", "show", names.gpu_image)
    assert (image["visibility"], image["disk_format"], image["size"]) == (
        "public", "qcow2", len(GUEST))
    assert {k: image["properties"].get(k) for k in ("hw_video_model", "configure_x")} == {
        "hw_video_model": "qxl", "configure_x": "true"}, image
    with cloud.http(cloud.token()) as client:
        neutron = client.get(f"/network/v2.0/quotas/{project['id']}").json()["quota"]
    assert neutron["floatingip"] == 50
    gpu = os_json(cloud, "flavor", "show", names.gpu_flavor)
    assert (gpu["vcpus"], gpu["ram"], gpu["disk"]) == (12, 32768, 40)
    assert gpu["properties"] == {"pci_passthrough:alias": "K20m:1"}
    grants = os_json(cloud, "role", "assignment", "list", "--user", names.user, "--project",
                     names.project, "--names")
    assert {g["Role"] for g in grants} == {names.role, "member"}
    grants = os_json(cloud, "role", "assignment", "list", "--user", "admin", "--names")
    assert {(g["Role"], g["Project"].split("@")[0]) for g in grants} >= {
        ("admin", "admin"), (names.role, names.project)}, grants
    subnet = os_json(cloud, "subnet", "show", names.subnet)
    assert subnet["cidr"] == "10.77.0.0/24" and subnet["dns_nameservers"] == ["10.0.0.53"]
    router = os_json(cloud, "router", "show", names.router)
    assert router["external_gateway_info"]["network_id"] == os_json(
        cloud, "network", "show", "public")["id"]
    assert subnet["id"] in str(router["interfaces_info"])
    groups = os_json(cloud, "security", "group", "list", "--project", names.project)
    rules = os_json(cloud, "security", "group", "rule", "list", groups[0]["ID"], "--long")
    ingress = sorted((r["IP Protocol"], r["Port Range"]) for r in rules
                     if r["Direction"] == "ingress")
    assert ingress == [("icmp", ""), ("tcp", "1:65535"), ("udp", "1:65535")], rules
    again = run.apply(seed_profile(names)).stdout
    assert again.strip() == f"No changes: the cloud matches {run.tmp / 'cloud.yaml'}.", again


def test_one_change_is_planned_and_applied_in_place(run: Runner, names: Names) -> None:
    changed = seed_profile(names, cores=100)
    changed["flavors"][1]["extra_specs"]["hw:cpu_policy"] = "dedicated"
    changed["images"][0]["properties"] = {"hw_video_model": "vga"}
    out = run.apply(changed).stdout
    assert "Plan: 0 to create, 3 to change, 0 to replace, 0 to delete." in out, out
    assert (f"~ project {names.project}: quotas {{'cores': 200}} -> {{'cores': 100}}"
            in out), out
    assert quota(run.cloud, names.project)["cores"] == 100
    assert os_json(run.cloud, "flavor", "show", names.gpu_flavor)["properties"] == {
        "pci_passthrough:alias": "K20m:1", "hw:cpu_policy": "dedicated"}
    props = os_json(run.cloud, "image", "show", names.gpu_image)["properties"]
    assert props.get("hw_video_model") == "vga" and "configure_x" not in props, props
    assert "No changes" in run.apply(changed).stdout


def test_export_applied_back_changes_nothing(run: Runner, names: Names) -> None:
    path = run.tmp / "export.yaml"
    with run.cloud.http(run.cloud.token()) as client:  # queued: no data, no formats yet
        queued = client.post("/image/v2/images", json={"name": unique("queued")}).json()
    # A router on a subnet without a name (a profile names what it links: left out).
    router = unique("unnamed")
    net = os_json(run.cloud, "network", "create", router)["id"]
    subnet = os_json(run.cloud, "subnet", "create", "--network", net, "--subnet-range",
                     "10.78.0.0/24", "")["id"]
    run.cloud.openstack("router", "create", router)
    run.cloud.openstack("router", "add", "subnet", router, subnet)
    try:
        run.atwill("export", "-o", str(path))
        exported = yaml.safe_load(path.read_text())
        mine = [p for p in exported["projects"] if p["name"] == names.project]
        assert mine and mine[0]["quotas"]["cores"] == 100
        nets = [n for n in exported["networks"] if n["name"] == names.network]
        assert nets[0]["subnets"][0]["cidr"] == "10.77.0.0/24"
        out = run.atwill("apply", str(path)).stdout
        assert out.strip() == f"No changes: the cloud matches {path}.", out
    finally:
        run.cloud.openstack("image", "delete", queued["id"])
        run.cloud.openstack("router", "remove", "subnet", router, subnet)
        run.cloud.openstack("router", "delete", router)
        run.cloud.openstack("network", "delete", net)


def test_a_bad_file_names_line_and_field_and_changes_nothing(run: Runner,
                                                             names: Names) -> None:
    text = (f"projects:\n  - name: {names.project}\n    quotas:\n      cores: lots\n")
    proc = run.apply(text, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"atwill: {run.tmp / 'cloud.yaml'}:4: projects[0].quotas.cores: must be an integer of "
        "at least -1, not 'lots'"), proc.stderr
    missing = run.apply({"routers": [{"name": "r", "project": names.project,
                                      "external_gateway": "nowhere"}]}, check=False)
    assert "routers[0]: network nowhere does not exist and is not in the profile" in (
        missing.stderr)
    assert quota(run.cloud, names.project)["cores"] == 100


def test_a_failure_midway_undoes_what_the_apply_made(run: Runner, names: Names) -> None:
    tag = unique("undo")
    bad = {"projects": [{"name": tag, "quotas": {"cores": 7}}], "roles": [{"name": tag}],
           "flavors": [{"name": tag, "vcpus": 1, "ram": 64,
                        "extra_specs": {"hw:cpu_policy": "bogus"}}]}
    proc = run.apply(bad, check=False)
    assert proc.returncode == 1, proc.stdout
    assert f"step 3/3 (+ flavor {tag}) failed:" in proc.stderr, proc.stderr
    assert "'bogus' is not one of" in proc.stderr
    assert "The 3 change(s) this apply had made were undone." in proc.stderr
    for kind in ("project", "role", "flavor"):
        assert run.cloud.openstack(kind, "show", tag, check=False).returncode != 0, kind


def test_zones_with_hosts_and_ha_policy_apply_once_export_and_refuse_bad_values(
        run: Runner, tmp_path: Path) -> None:
    cloud, node = run.cloud, JoinedNode(run.cloud, tmp_path, "zonenode")
    zone, spare = unique("edge"), unique("spare")
    profile = {"availability_zones": [
        {"name": zone, "hosts": [node.name], "ha_policy": "autonomous",
         "metadata": {"gpu": "K20m", "rack": "r1"}},
        {"name": spare, "ha_reserved": True}]}
    try:
        out = run.apply(profile).stdout
        assert "Applied: 2 to create" in out, out
        agg = os_json(cloud, "aggregate", "show", zone)
        assert (agg["availability_zone"], agg["hosts"]) == (zone, [node.name]), agg
        assert agg["properties"] == {"ha_policy": "autonomous", "gpu": "K20m",
                                     "rack": "r1"}, agg
        assert os_json(cloud, "aggregate", "show", spare)["properties"] == {
            "ha_reserved": "true"}
        assert "No changes" in run.apply(profile).stdout
        run.atwill("export", "-o", str(tmp_path / "export.yaml"))
        exported = yaml.safe_load((tmp_path / "export.yaml").read_text())
        assert {"name": zone, "hosts": [node.name], "ha_policy": "autonomous",
                "ha_reserved": False, "metadata": {"gpu": "K20m", "rack": "r1"}} in exported[
            "availability_zones"], exported
        assert "No changes" in run.atwill("apply", str(tmp_path / "export.yaml")).stdout
        before = os_json(cloud, "aggregate", "list", "--long")
        for bad, said in (
                ({"name": zone, "ha_policy": "sometimes"},
                 "availability_zones[0].ha_policy: must be one of evacuate, manual, "
                 "autonomous, not 'sometimes'"),
                ({"name": unique("z"), "hosts": [node.name, "no-such-node"]},
                 "availability_zones[0]: compute host no-such-node does not exist")):
            proc = run.apply({"availability_zones": [bad]}, check=False)
            assert proc.returncode == 1 and said in proc.stderr, proc.stderr
        assert os_json(cloud, "aggregate", "list", "--long") == before
        profile["availability_zones"][0].update(hosts=[], ha_policy="manual",
                                                metadata={"gpu": "K40"})
        out = run.apply(profile).stdout
        assert (f"~ availability zone {zone}: ha_policy autonomous -> manual; hosts "
                f"['{node.name}'] -> []") in out, out
        agg = os_json(cloud, "aggregate", "show", zone)
        assert (agg["hosts"], agg["properties"]) == ([], {"ha_policy": "manual",
                                                          "gpu": "K40"}), agg
    finally:
        run.apply({"availability_zones": [{"name": zone, "state": "absent"},
                                          {"name": spare, "state": "absent"}]})
        node.remove()
    assert cloud.openstack("aggregate", "show", zone, check=False).returncode != 0


def test_state_absent_deletes_in_dependency_order(run: Runner, names: Names) -> None:
    out = run.apply(absent(names)).stdout
    assert "Applied: 0 to create, 0 to change, 0 to replace, 11 to delete." in out, out
    for kind, name in (("project", names.project), ("user", names.user),
                       ("flavor", names.gpu_flavor), ("network", names.network),
                       ("router", names.router)):
        assert run.cloud.openstack(kind, "show", name, check=False).returncode != 0, kind
    assert "No changes" in run.apply(absent(names)).stdout
