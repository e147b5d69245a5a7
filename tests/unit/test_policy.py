import pytest

from atwill.core.errors import Forbidden
from atwill.core.policy import RULES, Credentials, allowed, enforce

ADMIN = Credentials("admin", frozenset({"admin", "member", "reader"}), project_id="P")
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
