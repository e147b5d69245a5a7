"""What OpenStack's API test suite (Tempest) checks and atwill answered differently:
Keystone's 64-character limit on project and domain names, Glance's 404 for an empty
image id."""

from __future__ import annotations

import pytest

from tests.cloud import Cloud, unique


@pytest.mark.parametrize("kind", ["project", "domain"])
def test_name_over_64_characters_is_400(cloud: Cloud, kind: str) -> None:
    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        made = client.post(f"/identity/v3/{kind}s", json={kind: {"name": "n" * 65}})
    assert made.status_code == 400, made.text
    assert f"{kind}.name" in made.json()["error"]["message"]
    assert cloud.db_snapshot() == before


def test_project_name_of_64_characters_is_kept(cloud: Cloud) -> None:
    name = unique("p").ljust(64, "x")
    with cloud.http(cloud.token()) as client:
        made = client.post("/identity/v3/projects", json={"project": {"name": name}})
        assert made.status_code == 201, made.text
        assert made.json()["project"]["name"] == name
        gone = client.delete("/identity/v3/projects/" + made.json()["project"]["id"])
        assert gone.status_code == 204, gone.text


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_image_with_empty_id_is_404(cloud: Cloud, method: str) -> None:
    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        resp = client.request(method, "/image/v2/images/")
    assert resp.status_code == 404, resp.text
    assert cloud.db_snapshot() == before


def test_deleting_an_enabled_domain_is_403(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        made = client.post("/identity/v3/domains", json={"domain": {"name": unique("d")}})
        assert made.status_code == 201, made.text
        url = "/identity/v3/domains/" + made.json()["domain"]["id"]
        refused = client.delete(url)
        assert refused.status_code == 403, refused.text
        assert "disable" in refused.json()["error"]["message"]
        assert client.get(url).status_code == 200
        assert client.patch(url, json={"domain": {"enabled": False}}).status_code == 200
        assert client.delete(url).status_code == 204


def test_endpoint_with_a_new_region_creates_it(cloud: Cloud) -> None:
    region = unique("region")
    with cloud.http(cloud.token()) as client:
        service = client.post("/identity/v3/services", json={"service": {
            "type": unique("type"), "name": unique("svc")}}).json()["service"]["id"]
        body = {"service_id": service, "interface": "public", "url": "http://x.test/",
                "region": region}
        before = cloud.db_snapshot()
        bad = client.post("/identity/v3/endpoints",
                          json={"endpoint": {**body, "enabled": "False"}})
        assert bad.status_code == 400, bad.text
        assert cloud.db_snapshot() == before
        made = client.post("/identity/v3/endpoints", json={"endpoint": body})
        assert made.status_code == 201, made.text
        assert made.json()["endpoint"]["region_id"] == region
        assert client.get("/identity/v3/regions/" + region).status_code == 200
        for url in ("/identity/v3/endpoints/" + made.json()["endpoint"]["id"],
                    "/identity/v3/regions/" + region, "/identity/v3/services/" + service):
            assert client.delete(url).status_code == 204


@pytest.mark.parametrize(("low", "high", "message"), [
    (-16, 80, "Invalid value for port -16"), (80, 65536, "Invalid value for port 65536"),
    (None, 6, "port_range_min must be <= port_range_max"),
    (6, None, "port_range_min must be <= port_range_max"),
    (80, 79, "port_range_min must be <= port_range_max")])
def test_security_group_rule_port_messages(cloud: Cloud, low: int | None, high: int | None,
                                           message: str) -> None:
    with cloud.http(cloud.token()) as client:
        group = client.post("/network/v2.0/security-groups", json={"security_group": {
            "name": unique("sg")}}).json()["security_group"]["id"]
        before = cloud.db_snapshot()
        resp = client.post("/network/v2.0/security-group-rules", json={
            "security_group_rule": {"security_group_id": group, "protocol": "tcp",
                                    "direction": "ingress", "port_range_min": low,
                                    "port_range_max": high}})
        assert resp.status_code == 400, resp.text
        assert message in resp.json()["NeutronError"]["message"]
        assert cloud.db_snapshot() == before
        assert client.delete("/network/v2.0/security-groups/" + group).status_code == 204
