import pytest

from atwill.core.errors import Forbidden
from atwill.core.policy import RULES, Credentials, allowed, enforce

ADMIN = Credentials("admin", frozenset({"admin", "member", "reader"}), project_id="P",
                    is_admin_project=True)
# The admin role on project A (not the admin project), and on a domain.
A_ADMIN = Credentials("pa", frozenset({"admin", "member", "reader"}), project_id="A")
D_ADMIN = Credentials("da", frozenset({"admin", "member", "reader"}), domain_id="D")
UNSCOPED = Credentials("u")
# An unscoped token of the admin user carries no roles and no admin project.
UNSCOPED_ADMIN = Credentials("admin", is_admin_project=True)
MEMBER = Credentials("m", frozenset({"member", "reader"}), project_id="A")
READER = Credentials("r", frozenset({"reader"}), project_id="A")
CUSTOM = Credentials("c", frozenset({"fabric"}), project_id="A")


def test_every_rule_is_known() -> None:
    assert set(RULES.values()) <= {"admin", "member", "reader", "owner", "any", "reader_domain"}


@pytest.mark.parametrize("creds, op, target, expected", [
    (ADMIN, "identity:create_project", {}, True),
    (MEMBER, "identity:create_project", {}, False),
    (MEMBER, "image:add_image", {"project_id": "A"}, True),
    (MEMBER, "image:add_image", {"project_id": "B"}, False),
    (READER, "image:add_image", {"project_id": "A"}, False),
    (READER, "image:get_image", {"project_id": "A"}, True),
    (READER, "image:get_image", {"project_id": "B"}, False),
    (CUSTOM, "image:get_image", {"project_id": "A"}, False),
    (MEMBER, "compute:keypairs:create", {"user_id": "m"}, True),
    (MEMBER, "compute:keypairs:create", {"user_id": "x"}, False),
    (READER, "compute:flavors:list", {}, True),
])
def test_matrix(creds: Credentials, op: str, target: dict, expected: bool) -> None:
    assert allowed(creds, op, **target) is expected


def test_enforce_names_the_operation() -> None:
    with pytest.raises(Forbidden, match="identity:list_users"):
        enforce(MEMBER, "identity:list_users")


@pytest.mark.parametrize("creds, op, target, expected", [
    # An unscoped token reads no project, quota or image, and lists no flavors.
    (UNSCOPED, "identity:get_project", {"project_id": "A"}, False),
    (UNSCOPED, "compute:servers:index", {}, False),
    (UNSCOPED, "compute:quotas:show", {"project_id": "A"}, False),
    (UNSCOPED, "compute:limits", {}, False),
    (UNSCOPED, "network:get_quota", {"project_id": "A"}, False),
    (UNSCOPED, "network:get_network", {}, False),
    (UNSCOPED, "image:get_images", {}, False),
    (UNSCOPED, "compute:flavors:list", {}, False),
    (UNSCOPED, "compute:keypairs:list", {"user_id": "u"}, False),
    (UNSCOPED, "identity:list_roles", {}, False),
    (UNSCOPED_ADMIN, "identity:list_users", {}, False),
    # What Keystone lets it do.
    (UNSCOPED, "identity:get_auth_projects", {}, True),
    (UNSCOPED, "identity:get_auth_domains", {}, True),
    (UNSCOPED, "identity:list_user_projects", {"user_id": "u"}, True),
    (UNSCOPED, "identity:list_user_projects", {"user_id": "x"}, False),
    (UNSCOPED, "identity:get_user", {"user_id": "u"}, True),
    (UNSCOPED, "identity:change_password", {"user_id": "u"}, True),
    # A project admin is an admin of that project only.
    (A_ADMIN, "identity:list_projects", {}, False),
    (A_ADMIN, "identity:create_project", {}, False),
    (A_ADMIN, "compute:quotas:update", {"project_id": "A"}, False),
    (A_ADMIN, "network:create_network:shared", {}, False),
    (A_ADMIN, "image:publicize_image", {}, False),
    (A_ADMIN, "compute:hypervisors:list", {}, False),
    (A_ADMIN, "image:get_image", {"project_id": "B"}, False),
    (A_ADMIN, "network:update_network", {"project_id": "B"}, False),
    (A_ADMIN, "image:add_image", {"project_id": "A"}, True),
    (A_ADMIN, "compute:servers:show", {"project_id": "A"}, True),
    # A domain admin is no cloud admin and reads no project.
    (D_ADMIN, "identity:list_users", {}, False),
    (D_ADMIN, "identity:get_project", {"project_id": "A"}, False),
    (D_ADMIN, "compute:quotas:show", {"project_id": "A"}, False),
    (D_ADMIN, "identity:get_domain", {"domain_id": "D"}, True),
    (D_ADMIN, "identity:get_domain", {"domain_id": "E"}, False),
    # The cloud admin.
    (ADMIN, "network:create_network:shared", {}, True),
    (ADMIN, "image:get_image", {"project_id": "B"}, True),
])
def test_scope_matrix(creds: Credentials, op: str, target: dict, expected: bool) -> None:
    assert allowed(creds, op, **target) is expected


def test_cloud_admin_needs_the_admin_project() -> None:
    assert ADMIN.is_admin
    assert not A_ADMIN.is_admin and not D_ADMIN.is_admin and not UNSCOPED_ADMIN.is_admin
    # The admin project without the admin role is no cloud admin either.
    assert not Credentials("m", frozenset({"member"}), "P", is_admin_project=True).is_admin


def test_unscoped_refusal_says_why() -> None:
    with pytest.raises(Forbidden, match="unscoped token"):
        enforce(UNSCOPED, "compute:servers:index")
