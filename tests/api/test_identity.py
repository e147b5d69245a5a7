"""Identity through the real openstack CLI."""

from tests.cloud import Cloud, unique


def test_token_issue_and_catalog(cloud: Cloud) -> None:
    token = cloud.openstack("token", "issue", "-f", "json")
    assert token["project_id"] and token["user_id"]
    catalog = cloud.openstack("catalog", "list", "-f", "json")
    assert {c["Type"] for c in catalog} >= {"identity", "compute", "image"}


def test_fabric_sequence(cloud: Cloud) -> None:
    project, user, role = unique("fabric"), unique("fabric"), unique("fabric")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "Fabric_123", user)
    cloud.openstack("role", "create", role)
    cloud.openstack("role", "add", "--project", project, "--user", user, role)
    rows = cloud.openstack("role", "assignment", "list", "--names", "-f", "json")
    assert any(r["Role"] == role and r["User"].startswith(user) for r in rows)
