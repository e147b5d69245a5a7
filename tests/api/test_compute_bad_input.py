"""Every bad compute request answers a Nova-style error with the right status, changing nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.cloud import Cloud, unique

V = "/compute/v2.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPp8z8ceHsLUnLX15vB4B7NC4RPGYtj9pwXlISfeVtdR x"
FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
          405: "badMethod", 406: "computeFault", 409: "conflictingRequest", 413: "overLimit"}


def flavor(**change: Any) -> dict:
    return {"flavor": {"name": unique("bad"), "ram": 64, "vcpus": 1, "disk": 0, **change}}


def server(**change: Any) -> dict:
    return {"server": {"name": "ok", "flavorRef": "1", "imageRef": str(uuid.uuid4()),
                       "networks": "none", **change}}


# (method, path, json body or raw bytes, microversion, expected status)
CASES: list[tuple[str, str, Any, str | None, int]] = [
    ("POST", "/flavors", b"{not json", None, 400),
    ("POST", "/flavors", b"[]", None, 400),
    ("POST", "/flavors", b"", None, 400),
    ("POST", "/flavors", {"flavour": {}}, None, 400),
    ("POST", "/flavors", flavor(ram=0), None, 400),
    ("POST", "/flavors", flavor(ram="lots"), None, 400),
    ("POST", "/flavors", flavor(vcpus=-1), None, 400),
    ("POST", "/flavors", flavor(disk=-1), None, 400),
    ("POST", "/flavors", flavor(name=""), None, 400),
    ("POST", "/flavors", flavor(name=" pad"), None, 400),
    ("POST", "/flavors", flavor(id="a/b"), None, 400),
    ("POST", "/flavors", flavor(bogus=1), None, 400),
    ("POST", "/flavors", flavor(description="too early"), "2.54", 400),
    ("POST", "/flavors", flavor(**{"os-flavor-access:is_public": "maybe"}), None, 400),
    ("POST", "/flavors", flavor(name="{existing}"), None, 409),
    ("POST", "/flavors", flavor(id="{existing_id}"), None, 409),
    ("POST", "/flavors", b"{" + b" " * (1024 * 1024 + 10) + b"}", None, 413),
    ("GET", "/flavors/no-such-flavor", None, None, 404),
    ("DELETE", "/flavors/no-such-flavor", None, None, 404),
    ("GET", "/flavors?minRam=x", None, None, 400),
    ("GET", "/flavors?is_public=perhaps", None, None, 400),
    ("GET", "/flavors?sort_key=bogus", None, None, 400),
    ("GET", "/flavors?sort_dir=sideways", None, None, 400),
    ("GET", "/flavors?marker=no-such-flavor", None, None, 400),
    ("GET", "/flavors?limit=-1", None, None, 400),
    ("PUT", "/flavors/{existing_id}", {"flavor": {"name": "x"}}, "2.55", 400),
    ("PUT", "/flavors/{existing_id}", {"flavor": {"description": 5}}, "2.55", 400),
    ("PATCH", "/flavors/{existing_id}", {}, None, 405),
    ("POST", "/flavors/{existing_id}/action", {"bogus": {}}, None, 400),
    ("POST", "/flavors/{existing_id}/action", {"addTenantAccess": {}}, None, 400),
    ("POST", "/flavors/{existing_id}/action", {"addTenantAccess": {"tenant": "nope"}}, None,
     400),
    ("POST", "/flavors/{existing_id}/action", {"addTenantAccess": {"tenant": "{project}"}},
     None, 409),
    ("POST", "/flavors/{private_id}/action", {"removeTenantAccess": {"tenant": "{project}"}},
     None, 404),
    ("GET", "/flavors/{existing_id}/os-flavor-access", None, None, 404),
    ("POST", "/flavors/{existing_id}/os-extra_specs", {"extra_specs": "x"}, None, 400),
    ("POST", "/flavors/{existing_id}/os-extra_specs", {"extra_specs": {"bad key!": "1"}},
     None, 400),
    ("POST", "/flavors/{existing_id}/os-extra_specs", {"extra_specs": {"k": "v" * 256}},
     None, 400),
    ("PUT", "/flavors/{existing_id}/os-extra_specs/a", {"b": "1"}, None, 400),
    ("PUT", "/flavors/{existing_id}/os-extra_specs/a", {"a": "1", "b": "2"}, None, 400),
    ("GET", "/flavors/{existing_id}/os-extra_specs/missing", None, None, 404),
    ("DELETE", "/flavors/{existing_id}/os-extra_specs/missing", None, None, 404),
    ("POST", "/flavors/no-such-flavor/os-extra_specs", {"extra_specs": {"a": "1"}}, None, 404),
    ("POST", "/os-keypairs", {"keypair": {"name": "bad/name", "public_key": KEY}}, None, 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "public_key": "ssh-rsa junk"}}, None,
     400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "public_key": 5}}, None, 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "type": "pgp"}}, "2.2", 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "type": "ssh"}}, "2.1", 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "user_id": "u"}}, "2.9", 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "k"}}, "2.92", 400),
    ("POST", "/os-keypairs", {"keypair": {"name": "{keypair}", "public_key": KEY}}, None, 409),
    ("POST", "/os-keypairs", {"keypair": {"name": "k", "user_id": "nobody"}}, "2.10", 400),
    ("GET", "/os-keypairs/no-such-key", None, None, 404),
    ("DELETE", "/os-keypairs/no-such-key", None, None, 404),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"cores": "x"}}, None, 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"cores": -2}}, None, 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"cores": 2**31}}, None, 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"gpus": 1}}, None, 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"floating_ips": 1}}, "2.36", 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"injected_files": 1}}, "2.57", 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": {"cores": 1, "force": "maybe"}}, None,
     400),
    ("PUT", "/os-quota-sets/no-such-project", {"quota_set": {"cores": 1}}, None, 400),
    ("PUT", "/os-quota-sets/{project}", {"quota_set": []}, None, 400),
    ("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"cores": "x"}}, None, 400),
    ("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"server_groups": 1}}, "2.1",
     400),
    ("GET", "/os-quota-sets/no-such-project", None, None, 400),
    ("PUT", "/os-services/not-a-uuid", {"status": "disabled"}, "2.53", 400),
    ("PUT", f"/os-services/{uuid.uuid4()}", {"status": "disabled"}, "2.53", 404),
    ("PUT", f"/os-services/{uuid.uuid4()}", {"status": "sideways"}, "2.53", 400),
    ("PUT", f"/os-services/{uuid.uuid4()}", {"status": "disabled",
                                             "disabled_reason": "a\u0000b"}, "2.53", 400),
    ("PUT", f"/os-services/{uuid.uuid4()}", {"status": "enabled"}, "2.1", 404),
    ("PUT", "/os-services/enable", {"host": "nowhere", "binary": "nova-compute"}, "2.1", 404),
    ("PUT", "/os-services/disable", {"binary": "nova-compute"}, "2.1", 400),
    ("DELETE", f"/os-services/{uuid.uuid4()}", None, "2.53", 404),
    ("GET", "/os-hypervisors/not-a-uuid", None, "2.53", 400),
    ("GET", f"/os-hypervisors/{uuid.uuid4()}", None, "2.53", 404),
    ("GET", "/os-hypervisors/12345", None, "2.1", 404),
    ("GET", "/os-hypervisors/statistics", None, "2.88", 404),
    ("GET", "/os-hypervisors/x/search", None, "2.53", 404),
    ("GET", "/os-hypervisors?limit=x", None, "2.33", 400),
    ("POST", f"/servers/{uuid.uuid4()}/metadata", {"metadata": {"k": "\u0000"}}, None, 400),
    ("PUT", f"/servers/{uuid.uuid4()}/metadata", {"metadata": {"\u0007": "v"}}, None, 400),
    ("PUT", f"/servers/{uuid.uuid4()}/metadata/k", {"meta": {"k": "a\r\n"}}, None, 400),
    ("PUT", f"/servers/{uuid.uuid4()}", {"server": {"accessIPv4": [1]}}, None, 400),
    ("PUT", f"/servers/{uuid.uuid4()}", {"server": {"accessIPv6": "::1%x\n"}}, None, 400),
    ("POST", "/os-server-groups", {"server_group": {"name": "g\u0000",
                                                    "policies": ["affinity"]}}, None, 400),
    ("GET", "/servers?name=(a)%5C1", None, None, 400),
    ("GET", "/servers?name=(%3F%3Da)", None, None, 400),
    ("GET", "/servers/detail?name=" + "a" * 300, None, None, 400),
    ("GET", "/flavors", None, "2.97", 406),
    ("GET", "/flavors", None, "two", 400),
    ("GET", "/no-such-resource", None, None, 404),
]


@pytest.fixture(scope="module")
def names(cloud: Cloud) -> dict[str, str]:
    """Existing things the table refers to as {existing}, {existing_id}, {keypair}..."""
    with cloud.http(cloud.token()) as client:
        public = client.post(f"{V}/flavors", json=flavor()).json()["flavor"]
        private = client.post(f"{V}/flavors", json=flavor(
            **{"os-flavor-access:is_public": False})).json()["flavor"]
        keypair = unique("kp")
        client.post(f"{V}/os-keypairs", json={"keypair": {"name": keypair, "public_key": KEY}})
        project = client.get("/identity/v3/auth/projects").json()["projects"][0]["id"]
    return {"existing": public["name"], "existing_id": public["id"],
            "private_id": private["id"], "keypair": keypair, "project": project}


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names) if "{" in value and "}" in value else value
    if isinstance(value, dict):
        return {fill(k, names): fill(v, names) for k, v in value.items()}
    return value


def test_bad_requests_change_nothing(cloud: Cloud, names: dict[str, str]) -> None:
    before = cloud.db_snapshot()
    failures = []
    with cloud.http(cloud.token()) as client:
        for method, path, body, version, status in CASES:
            headers = {"OpenStack-API-Version": f"compute {version}"} if version else {}
            content = body if isinstance(body, bytes) else (
                json.dumps(fill(body, names)).encode() if body is not None else None)
            if content is not None:
                headers["Content-Type"] = "application/json"
            resp = client.request(method, V + fill(path, names), content=content,
                                  headers=headers)
            # The root middleware rejects an oversized Content-Length before compute sees it,
            # in the shared envelope; only the status is compute's to check there.
            fault = FAULTS[status] if status != 413 else next(iter(_json(resp)), "")
            if resp.status_code != status or fault not in _json(resp):
                failures.append((method, path, status, resp.status_code, resp.text[:200]))
    assert not failures, "\n".join(map(str, failures))
    assert cloud.db_snapshot() == before


# (change to a valid server create body, status, a word the message must hold)
SERVER_CASES: list[tuple[dict, int, str]] = [
    ({"name": "a\u0000b"}, 400, "'name'"), ({"name": "a\nb"}, 400, "'name'"),
    ({"name": "\u001b[2J"}, 400, "'name'"), ({"name": "a\ud800"}, 400, "surrogate"),
    ({"description": "a\rb"}, 400, "description"),
    ({"accessIPv4": 5}, 400, "accessIPv4"), ({"accessIPv4": []}, 400, "accessIPv4"),
    ({"accessIPv4": {}}, 400, "accessIPv4"), ({"accessIPv4": "::1"}, 400, "accessIPv4"),
    ({"accessIPv4": "1.2.3.4 x"}, 400, "accessIPv4"),
    ({"accessIPv6": "fe80::1%eth0"}, 400, "accessIPv6"),
    ({"accessIPv6": "1.2.3.4"}, 400, "accessIPv6"),
    ({"metadata": {"k": "a\u0000"}}, 400, "metadata"),
    ({"metadata": {"a\nb": "v"}}, 400, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(1025)}}, 400, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(129)}}, 403, "metadata_items"),
    ({"tags": ["t"] * 51}, 400, "tags"), ({"tags": ["a/b"]}, 400, "tags"),
    ({"tags": "t"}, 400, "tags"), ({"tags": ["a\u0000"]}, 400, "tags"),
    ({"security_groups": [{"name": "a\u0000"}]}, 400, "security_groups"),
    ({"networks": [{"uuid": str(uuid.uuid4())}] * 65}, 400, "networks"),
]


def test_server_create_refuses_bad_fields(cloud: Cloud, names: dict[str, str]) -> None:
    """Each bad field is named in the 400 (so it is refused for itself, not for the image)."""
    with cloud.http(cloud.token()) as client:
        image = client.get("/image/v2/images").json()["images"]
        body = {"name": "ok", "flavorRef": names["existing_id"], "networks": "none",
                "imageRef": image[0]["id"] if image else str(uuid.uuid4())}
        before = cloud.db_snapshot()
        failures = []
        for change, status, word in SERVER_CASES:
            resp = client.post(f"{V}/servers", content=json.dumps(
                {"server": {**body, **change}}).encode(),  # ASCII escapes: surrogates pass
                headers={"Content-Type": "application/json"})
            message = next(iter(_json(resp).values()), {}).get("message", "")
            if resp.status_code != status or word not in message or len(resp.text) > 500:
                failures.append((change if len(str(change)) < 80 else "(long)",
                                 resp.status_code, resp.text[:200]))
    assert not failures, "\n".join(map(str, failures))
    assert cloud.db_snapshot() == before


def test_streamed_oversized_body_is_413(cloud: Cloud) -> None:
    def chunks():  # noqa: ANN202 - no Content-Length, so the handler's own cap applies
        yield b'{"flavor": {"name": "'
        for _ in range(1100):
            yield b"x" * 1024
        yield b'"}}'

    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/flavors", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "overLimit" in resp.json()
    assert cloud.db_snapshot() == before


def test_no_token_is_401(cloud: Cloud) -> None:
    with cloud.http() as client:
        resp = client.get(f"{V}/flavors")
    assert resp.status_code == 401 and "unauthorized" in resp.json()
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"


def test_keypair_quota_is_enforced_with_numbers(cloud: Cloud) -> None:
    from tests.api.test_compute_nonadmin import make_user

    user = make_user(cloud, "member")
    with cloud.http(cloud.token()) as admin:
        project = [p for p in admin.get("/identity/v3/projects").json()["projects"]
                   if p["name"] == cloud.users[user]["project"]][0]["id"]
        # The admin's own key pairs are not the project's usage (found by a full run, where
        # other modules had left the admin two): the limit is set all the same.
        mine = [unique("adminkey") for _ in range(2)]
        for name in mine:
            made = admin.post(f"{V}/os-keypairs", json={"keypair": {"name": name,
                                                                    "public_key": KEY}})
            assert made.status_code == 200, made.text
        try:
            limited = admin.put(f"{V}/os-quota-sets/{project}",
                                json={"quota_set": {"key_pairs": 1}})
        finally:
            for name in mine:
                admin.delete(f"{V}/os-keypairs/{name}")
        assert limited.status_code == 200, limited.text
    with cloud.http(cloud.token(user)) as client:
        first = client.post(f"{V}/os-keypairs", json={"keypair": {"name": "a",
                                                                  "public_key": KEY}})
        second = client.post(f"{V}/os-keypairs", json={"keypair": {"name": "b",
                                                                   "public_key": KEY}})
    assert first.status_code == 200
    assert second.status_code == 403
    assert "used 1 of 1 key_pairs" in second.json()["forbidden"]["message"]


def _json(resp: Any) -> dict:
    try:
        return resp.json()
    except ValueError:
        return {}
