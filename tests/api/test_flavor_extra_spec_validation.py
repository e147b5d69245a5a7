"""Flavor extra specs validated as Nova validates them from 2.86, permissive below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cloud import Cloud, CommandFailed, unique

V = "/compute/v2.1/flavors"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture
def flavor(cloud: Cloud) -> Iterator[dict]:
    made = cloud.openstack("flavor", "create", "--ram", "512", "--vcpus", "1", "--disk", "1",
                           unique("spec"), "-f", "json")
    yield made
    cloud.openstack("flavor", "delete", made["id"])


def specs(cloud: Cloud, flavor: dict) -> dict:
    with cloud.http(cloud.token()) as client:
        return client.get(f"{V}/{flavor['id']}/os-extra_specs").json()["extra_specs"]


def test_cli_refuses_bad_specs_at_286_and_changes_nothing(cloud: Cloud, flavor: dict) -> None:
    at = ("--os-compute-api-version", "2.86")
    cloud.openstack(*at, "flavor", "set", "--property", "hw:cpu_policy=dedicated",
                    "--property", "gpu=t4", flavor["id"])
    assert specs(cloud, flavor) == {"hw:cpu_policy": "dedicated", "gpu": "t4"}
    for prop, message in (
            ("hw:cpu_policy=bogus", "'bogus' is not one of: dedicated, shared, mixed."),
            ("hw:cpu_polcy=dedicated",
             "extra spec 'hw:cpu_polcy' does not appear to be a valid extra spec."),
            ("hw:numa_nodes=0", "'0' is less than the min value of '1'.")):
        with pytest.raises(CommandFailed) as failed:
            cloud.openstack(*at, "flavor", "set", "--property", prop, flavor["id"])
        assert message in str(failed.value)
    assert specs(cloud, flavor) == {"hw:cpu_policy": "dedicated", "gpu": "t4"}
    shown = cloud.openstack("flavor", "show", flavor["id"], "-f", "json")
    assert shown["properties"] == {"hw:cpu_policy": "dedicated", "gpu": "t4"}


def test_api_by_microversion(cloud: Cloud, flavor: dict) -> None:
    path = f"{V}/{flavor['id']}/os-extra_specs"
    bad = {"hw:cpu_policy": "bogus", "hw:cpu_polcy": "x"}
    with cloud.http(cloud.token()) as client:
        for version in ("2.86", "2.96"):
            before = client.get(path).json()
            resp = client.post(path, json={"extra_specs": {"gpu": "a", **bad}},
                               headers=mv(version))
            assert resp.status_code == 400, resp.text
            assert resp.json()["badRequest"]["message"].startswith("Validation failed; ")
            assert client.get(path).json() == before  # the good key was not stored either
            put = client.put(f"{path}/hw:numa_mem.0", json={"hw:numa_mem.0": "0"},
                             headers=mv(version))
            assert put.status_code == 400 and "min value of '1'" in put.text, put.text
            ok = client.put(f"{path}/hw:numa_mem.0", json={"hw:numa_mem.0": 512},
                            headers=mv(version))
            assert ok.status_code == 200 and ok.json() == {"hw:numa_mem.0": "512"}, ok.text
            client.delete(f"{path}/hw:numa_mem.0")
        # Below 2.86 Nova stores what it is given.
        resp = client.post(path, json={"extra_specs": bad}, headers=mv("2.85"))
        assert resp.status_code == 200 and resp.json() == {"extra_specs": bad}, resp.text
    assert specs(cloud, flavor) == bad


def test_unset_answers_200_without_a_body(cloud: Cloud, flavor: dict) -> None:
    """Nova's DELETE of one extra spec is a 200 with an empty body (Tempest checks it)."""
    path = f"{V}/{flavor['id']}/os-extra_specs"
    with cloud.http(cloud.token()) as client:
        assert client.post(path, json={"extra_specs": {"gpu": "a", "hw:numa_nodes": "1"}},
                           headers=mv("2.86")).status_code == 200
        resp = client.delete(f"{path}/gpu")
        assert (resp.status_code, resp.content) == (200, b"")
        assert client.get(path).json() == {"extra_specs": {"hw:numa_nodes": "1"}}
        assert client.delete(f"{path}/gpu").status_code == 404
