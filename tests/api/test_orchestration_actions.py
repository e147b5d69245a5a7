"""Orchestration with the real CLI: wait conditions signalled by curl, stack cancel, preview
(create --dry-run), abandon refused as Heat's default, and seed 003's advanced template.

Its own project and module, so that it runs beside test_orchestration_stacks (xdist).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.api.test_orchestration_stacks import TABLES, Env, make_env
from tests.cloud import Cloud, unique

# Seed 003's "Advanced stack", as written (its blank lines aside).
SEED_ADVANCED = """\
heat_template_version: 2013-05-23
description: >
 A template showing how to create a Nova instance, a Cinder volume and attach
 the volume to the instance. The template uses only Heat OpenStack native
 resource types.
parameters:
 instance_type:
   type: string
   description: Type of the instance to be created.
   default: m1.small
   constraints:
     - allowed_values: [m1.small, m1.medium, m1.large]
       description:
         Value must be one of 'm1.small', 'm1.medium' or 'm1.large'.
 image_id:
   type: string
   description: ID of the image to use for the instance to be created.
   default: centos7
   constraints:
     - allowed_values: [ centos7, fedora.21.gpu, ubuntu14.04 ]
       description:
         Image ID must be either centos7, fedora.21.gpu, ubuntu14.04.
 availability_zone:
   type: string
   description: The Availability Zone to launch the instance.
   default: nova
 volume_size:
   type: number
   description: Size of the volume to be created.
   default: 1
   constraints:
     - range: { min: 1, max: 1024 }
       description: must be between 1 and 1024 Gb.
resources:
 nova_instance:
   type: OS::Nova::Server
   properties:
     availability_zone: { get_param: availability_zone }
     image: { get_param: image_id }
     flavor: { get_param: instance_type }
 cinder_volume:
   type: OS::Cinder::Volume
   properties:
     size: { get_param: volume_size }
     availability_zone: { get_param: availability_zone }
 volume_attachment:
   type: OS::Cinder::VolumeAttachment
   properties:
     volume_id: { get_resource: cinder_volume }
     instance_uuid: { get_resource: nova_instance }
     mountpoint: /dev/vdc
outputs:
 instance_ip:
   description: Public IP address of the newly created Nova instance.
   value: { get_attr: [nova_instance, first_address] }
"""


def waiting(timeout: int, *names: str) -> dict:
    """A handle and a wait condition per name; outputs each handle's curl_cli and data."""
    resources, outputs = {}, {}
    for name in names:
        resources[f"{name}_handle"] = {"type": "OS::Heat::WaitConditionHandle"}
        resources[name] = {"type": "OS::Heat::WaitCondition", "properties": {
            "handle": {"get_resource": f"{name}_handle"}, "timeout": timeout}}
        outputs[f"{name}_curl"] = {"value": {"get_attr": [f"{name}_handle", "curl_cli"]}}
        outputs[f"{name}_data"] = {"value": {"get_attr": [name, "data"]}}
    return {"heat_template_version": "2021-04-16", "resources": resources,
            "outputs": outputs}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(cloud, tmp_path_factory, "heatact")


def soon(check: Callable[[], Any], what: str) -> Any:
    """check()'s first true answer, polled every 50 ms for up to 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def signal_url(env: Env, name: str, handle: str) -> str:
    stack = env.shown(name)
    return (f"/orchestration/v1/{env.project_id}/stacks/{name}/{stack['id']}/resources/"
            f"{handle}/signal")


def test_wait_condition_signalled_by_curl_a_timeout_and_a_cancelled_update(
        env: Env) -> None:
    before = env.rows(*TABLES)
    name, late = unique("waits"), unique("late")
    env.stack("create", "-t", env.template(waiting(60, "wait")), name)
    env.stack("create", "-t", env.template(waiting(1, "wait")), late)
    # Until it is signalled the stack waits.
    curl = soon(lambda: env.outputs(name)["wait_curl"], "the handle")
    assert env.shown(name)["stack_status"] == "CREATE_IN_PROGRESS"
    assert curl.startswith("curl -i -X POST -H 'X-Auth-Token: ")
    url = signal_url(env, name, "wait_handle")
    with env.cloud.http("not-the-handle-token") as stranger:
        assert stranger.post(url, json={"status": "SUCCESS"}).status_code == 401
        # Review findings: no stack name is confirmed to a stranger, and a token outside
        # ASCII is refused like any wrong one (it was a 500).
        nowhere = url.replace(name, "no-such-stack")
        assert stranger.post(nowhere, json={"status": "SUCCESS"}).status_code == 401
        odd = stranger.post(url, json={"status": "SUCCESS"},
                            headers={"X-Auth-Token": "t\u00e9ken".encode()})
        assert odd.status_code == 401, odd.text
    token = curl.split("X-Auth-Token: ", 1)[1].split("'", 1)[0]
    with env.cloud.http(token) as guest:
        odd = guest.post(url, json={"status": "MAYBE"})
    assert odd.status_code == 400 and "Metadata format invalid" in odd.text
    # The handle's own command line, as a guest would run it (with the cloud's CA).
    body = json.dumps({"status": "SUCCESS", "reason": "booted", "data": "ok", "id": "web1"})
    done = subprocess.run(f"{curl} --cacert {env.cloud.cacert} --data '{body}'", shell=True,
                          capture_output=True, text=True, timeout=30)
    assert " 200" in done.stdout.splitlines()[0], done.stdout + done.stderr
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_COMPLETE", shown
    assert json.loads(env.outputs(name)["wait_data"]) == {"web1": "ok"}
    failed = env.wait(late)
    assert failed["stack_status"] == "CREATE_FAILED"
    assert failed["stack_status_reason"] == (
        "Resource CREATE failed: WaitConditionTimeout: resources.wait: 0 of 1 received")
    # An update that waits on a new condition, cancelled: UPDATE_FAILED, then rolled back.
    env.stack("update", "--existing", "-t", env.template(waiting(60, "wait", "more")), name)
    soon(lambda: env.physical(name).get("more"), "the new wait condition")
    cancelled = env.stack("cancel", name, "-f", "json")
    assert cancelled[0]["Stack Name"] == name
    shown = env.wait(name, action="ROLLBACK")
    assert shown["stack_status"] == "ROLLBACK_COMPLETE", shown
    assert set(env.resources(name)) == {"wait", "wait_handle"}
    reasons = [e["resource_status_reason"] for e in env.get(f"stacks/{name}/events").json()[
        "events"] if e["resource_name"] == name]
    assert "Stack UPDATE cancelled" in reasons
    # Nothing to cancel now: Heat's refusal.
    actions = f"/orchestration/v1/{env.project_id}/stacks/{name}/{shown['id']}/actions"
    refused = env.api.post(actions, json={"cancel_update": None})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "Cancelling update when stack is ROLLBACK_COMPLETE is not supported.")
    # Abandon is answered only where enable_stack_abandon is set; Heat's default is off.
    abandon = env.stack("abandon", name, check=False)
    assert abandon.returncode != 0 and "Stack Abandon is not supported." in abandon.stderr
    env.delete(name)
    env.delete(late)
    assert env.rows(*TABLES) == before


def test_seed_003_advanced_template_validates_and_previews(env: Env) -> None:
    before = env.rows(*TABLES, "volumes")
    path = env.template(yaml.safe_load(SEED_ADVANCED), "seed003.yaml")
    shown = env.cloud.openstack("orchestration", "template", "validate", "-t", path,
                                "-f", "json", user=env.user)
    assert shown["Parameters"]["volume_size"]["MaxValue"] == 1024
    assert shown["Parameters"]["instance_type"]["AllowedValues"] == [
        "m1.small", "m1.medium", "m1.large"]
    bad = env.stack("create", "-t", path, "--parameter", "instance_type=m1.tiny",
                    unique("seed"), check=False)
    assert bad.returncode != 0
    assert "Value must be one of 'm1.small', 'm1.medium' or 'm1.large'." in bad.stderr
    name = unique("seed")
    preview = env.stack("create", "--dry-run", "-t", path, "--parameter", "volume_size=2",
                        name, "-f", "json")
    assert preview["stack_name"] == name
    resources = {r["resource_name"]: r for r in preview["resources"]}
    assert {n: r["resource_type"] for n, r in resources.items()} == {
        "nova_instance": "OS::Nova::Server", "cinder_volume": "OS::Cinder::Volume",
        "volume_attachment": "OS::Cinder::VolumeAttachment"}
    assert {r["resource_action"] + "_" + r["resource_status"]
            for r in resources.values()} == {"INIT_COMPLETE"}
    assert resources["cinder_volume"]["required_by"] == ["volume_attachment"]
    assert preview["parameters"]["volume_size"] == "2"
    assert env.shown(name) is None
    assert env.rows(*TABLES, "volumes") == before


NESTED = {"heat_template_version": "2021-04-16",
          "parameters": {"label": {"type": "string"}},
          "resources": {"net": {"type": "OS::Neutron::Net", "properties": {
              "name": {"get_param": "label"}}}},
          "outputs": {"name": {"value": {"get_attr": ["net", "name"]}}}}


def test_nested_stacks_from_files_registry_and_os_heat_stack(env: Env) -> None:
    before = env.rows(*TABLES, "networks")
    name = unique("nested")
    folder = env.tmp / name
    folder.mkdir()
    (folder / "net.yaml").write_text(yaml.safe_dump(NESTED))
    (folder / "env.yaml").write_text(yaml.safe_dump({"resource_registry": {
        "My::Net": "net.yaml"}}))
    parent = {"heat_template_version": "2021-04-16", "resources": {
        "direct": {"type": "net.yaml", "properties": {"label": f"{name}-direct"}},
        "aliased": {"type": "My::Net", "properties": {"label": f"{name}-aliased"}},
        "stack": {"type": "OS::Heat::Stack", "properties": {
            "template": {"get_file": "net.yaml"},
            "parameters": {"label": f"{name}-stack"}}}},
        "outputs": {"direct": {"value": {"get_attr": ["direct", "name"]}},
                    "aliased": {"value": {"get_attr": ["aliased", "name"]}},
                    "stack": {"value": {"get_attr": ["stack", "outputs", "name"]}}}}
    (folder / "parent.yaml").write_text(yaml.safe_dump(parent))
    env.stack("create", "-t", str(folder / "parent.yaml"), "-e", str(folder / "env.yaml"),
              name)
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_COMPLETE", shown
    assert env.outputs(name) == {"direct": f"{name}-direct", "aliased": f"{name}-aliased",
                                 "stack": f"{name}-stack"}
    assert sorted(n for n in env.networks() if n.startswith(name)) == [
        f"{name}-aliased", f"{name}-direct", f"{name}-stack"]
    # The children are the parent's: not in the project's stack list.
    listed = [s["stack_name"] for s in env.get("stacks").json()["stacks"]]
    assert name in listed and not [s for s in listed if s.startswith(f"{name}-")]
    children = env.physical(name)
    child = env.get(f"stacks/{children['stack']}").json()["stack"]
    assert child["parent"] == shown["id"] and child["stack_status"] == "CREATE_COMPLETE"
    # resource list --nested-depth: the children's resources under their parent resource.
    rows = env.get(f"stacks/{name}/resources", nested_depth=1).json()["resources"]
    assert sorted((r.get("parent_resource") or "", r["resource_name"]) for r in rows) == [
        ("", "aliased"), ("", "direct"), ("", "stack"), ("aliased", "net"),
        ("direct", "net"), ("stack", "net")]
    assert len(env.get(f"stacks/{name}/resources").json()["resources"]) == 3
    cli = env.stack("resource", "list", "--nested-depth", "2", name, "-f", "json")
    assert sorted(r["stack_name"].rsplit("-", 1)[0] for r in cli
                  if r["resource_name"] == "net") == [
        f"{name}-aliased", f"{name}-direct", f"{name}-stack"]
    assert env.get(f"stacks/{name}/resources", nested_depth="x").status_code == 400
    missing = env.stack("create", "-t", str(folder / "parent.yaml"), unique("nested"),
                        check=False)
    assert "The Resource Type (My::Net) could not be found." in missing.stderr
    env.delete(name)
    for child_id in children.values():
        assert env.get(f"stacks/{child_id}").status_code == 404
    assert env.rows(*TABLES, "networks") == before
