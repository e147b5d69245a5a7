"""Two controllers of one cloud on PostgreSQL behind a TCP load balancer
(tests/api/tcp_balancer.py), `public_endpoint` naming it: each controller answers the
token's catalog with its own URL on the internal and admin interfaces and the load
balancer's on the public one (core/catalog_rebase.py), and the clouds.yaml an added
controller writes names the load balancer (`atwill`) and each controller; the real
`openstack` CLI keeps working through a controller's own cloud and through the load
balancer once the first controller is stopped (docs/controllers.md, "The catalog and
clouds.yaml")."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from atwill.cli.apply_api import Api
from atwill.devcloud_forkserver import cli_forks
from tests.api.tcp_balancer import TcpBalancer
from tests.api.test_controllers_ha import add_by_bundle
from tests.cloud import BIN, Cloud, free_port
from tests.conftest import fresh_database_url


@dataclass
class Trio:
    a: Cloud
    b: Cloud
    lb: str
    balancer: TcpBalancer


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    for url in fresh_database_url("postgres"):
        a, b = Cloud(url), Cloud(url)
        port = free_port()
        balancer = TcpBalancer(port, [("127.0.0.1", a.port), ("127.0.0.1", b.port)])
        try:
            a.init()
            # Set after init: the rows keep the first controller's own URL (a cloud that
            # gets a load balancer later), which every controller must still rebase.
            a.configure(controller_urls=f"{a.url},{b.url}",
                        public_endpoint=f"https://127.0.0.1:{port}")
            a.start()
            add_by_bundle(a, b, tmp_path_factory.mktemp("catalogbundle"))
            yield Trio(a, b, f"https://127.0.0.1:{port}", balancer)
        finally:
            balancer.close()
            a.destroy()
            b.destroy()


def _catalog(cloud: Cloud, path: str = "/identity/v3/auth/tokens") -> dict[str, dict]:
    """service type -> interface -> URL of a token's catalog got from this controller."""
    with cloud.http(cloud.token()) as client:
        if path.endswith("tokens"):
            token = client.headers["X-Auth-Token"]
            body = client.get(path, headers={"X-Subject-Token": token}).json()["token"]
        else:
            body = client.get(path).json()
    return {s["type"]: {e["interface"]: e["url"] for e in s["endpoints"]}
            for s in body["catalog"]}


def _cli(clouds_yaml: Path, cloud: str, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    cmd = [str(BIN / "openstack"), "--os-cloud", cloud, *args, "-f", "json"]
    if os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1":  # as Cloud.openstack
        proc = cli_forks().run(cmd, env, timeout=120)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _name(cloud: Cloud) -> str:
    return f"atwill-127.0.0.1-{cloud.port}"


def test_each_controller_answers_the_catalog_with_its_own_url(trio: Trio) -> None:
    for cloud in (trio.a, trio.b):
        for path in ("/identity/v3/auth/tokens", "/identity/v3/auth/catalog"):
            compute = _catalog(cloud, path)["compute"]
            assert compute == {"public": f"{trio.lb}/compute/v2.1",
                               "internal": f"{cloud.url}/compute/v2.1",
                               "admin": f"{cloud.url}/compute/v2.1"}
    # The rows themselves stay as stored (Keystone's API to edit them).
    with trio.b.http(trio.b.token()) as client:
        urls = {e["url"] for e in client.get("/identity/v3/endpoints").json()["endpoints"]}
    assert urls and all(u.startswith(trio.a.url) for u in urls)


def test_links_name_the_public_endpoint(trio: Trio) -> None:
    with trio.b.http() as client:
        versions = client.get("/image").json()["versions"]
    assert versions and all(link["href"].startswith(f"{trio.lb}/image/")
                            for v in versions for link in v["links"])


def test_the_added_controller_writes_a_cloud_for_the_balancer_and_each_controller(
        trio: Trio) -> None:
    clouds = yaml.safe_load((trio.b.state_dir / "clouds.yaml").read_text())["clouds"]
    assert sorted(clouds) == sorted(["atwill", _name(trio.a), _name(trio.b)])
    assert clouds["atwill"]["auth"]["auth_url"] == f"{trio.lb}/identity"
    assert clouds["atwill"]["interface"] == "public"
    for cloud in (trio.a, trio.b):
        assert clouds[_name(cloud)]["auth"]["auth_url"] == f"{cloud.url}/identity"
        assert clouds[_name(cloud)]["interface"] == "internal"


def test_atwill_apply_uses_the_interface_of_its_cloud(trio: Trio) -> None:
    clouds = yaml.safe_load((trio.b.state_dir / "clouds.yaml").read_text())["clouds"]
    own, balanced = Api(clouds[_name(trio.b)]), Api(clouds["atwill"])
    try:
        assert own.urls["compute"] == f"{trio.b.url}/compute/v2.1"
        assert balanced.urls["compute"] == f"{trio.lb}/compute/v2.1"
    finally:
        own.http.close()
        balanced.http.close()


def test_the_first_controller_rewrites_its_clouds_yaml_on_demand(trio: Trio) -> None:
    # Its init wrote only itself (public_endpoint and B came later).
    path = trio.a.state_dir / "clouds.yaml"
    assert sorted(yaml.safe_load(path.read_text())["clouds"]) == ["atwill"]
    out = trio.a.atwill("controller", "credentials").stdout
    assert f"wrote {path}" in out and trio.b.url in out  # B is live in the database
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert sorted(clouds) == sorted(["atwill", _name(trio.a), _name(trio.b)])
    assert clouds["atwill"]["auth"]["auth_url"] == f"{trio.lb}/identity"
    assert "nothing changed" in trio.a.atwill("controller", "credentials").stdout


def test_the_cli_keeps_to_its_controller_and_survives_the_first_one_stopping(
        trio: Trio) -> None:
    clouds_yaml = trio.b.state_dir / "clouds.yaml"
    endpoints = _cli(clouds_yaml, _name(trio.b), "catalog", "show", "compute")["endpoints"]
    text = json.dumps(endpoints)
    assert f"{trio.b.url}/compute/v2.1" in text and f"{trio.lb}/compute/v2.1" in text
    assert f"{trio.a.url}/compute/v2.1" not in text
    trio.a.stop()
    try:
        # B's own cloud: before each controller rebased the catalog, B answered with the
        # rows' URL (A's) and these failed with A stopped.
        assert _cli(clouds_yaml, _name(trio.b), "server", "list") == []
        # Image and network are found by version discovery, whose links name the
        # balancer: keystoneauth keeps the discovery URL's host and port when a link
        # names another (discover._combine_relative_url), so they stay on B too: not
        # one connection went through the balancer.
        through = len(trio.balancer.picked)
        assert isinstance(_cli(clouds_yaml, _name(trio.b), "network", "list"), list)
        assert isinstance(_cli(clouds_yaml, _name(trio.b), "image", "list"), list)
        assert trio.balancer.picked[through:] == []
        # The load balancer's cloud: it sends every connection to B now.
        before = len(trio.balancer.picked)
        assert _cli(clouds_yaml, "atwill", "server", "list") == []
        assert isinstance(_cli(clouds_yaml, "atwill", "image", "list"), list)
        assert set(trio.balancer.picked[before:]) == {trio.b.port}
    finally:
        trio.a.start()
