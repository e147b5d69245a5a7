"""Policy for system-scoped tokens: system admin is the cloud admin, system reader reads."""

from __future__ import annotations

import pytest

from atwill.core.errors import Forbidden
from atwill.core.policy import RULES, Credentials, allowed, enforce, is_read

SYS_ADMIN = Credentials("sa", frozenset({"admin", "member", "reader"}), system=True)
SYS_READER = Credentials("sr", frozenset({"reader"}), system=True)
SYS_MEMBER = Credentials("sm", frozenset({"member", "reader"}), system=True)
SYS_CUSTOM = Credentials("sc", frozenset({"fabric"}), system=True)
ADMIN = Credentials("admin", frozenset({"admin", "member", "reader"}), project_id="P",
                    is_admin_project=True)
A_ADMIN = Credentials("pa", frozenset({"admin", "member", "reader"}), project_id="A")


def test_system_admin_is_the_cloud_admin_and_a_reader_is_not() -> None:
    assert SYS_ADMIN.is_admin and SYS_ADMIN.reads_all
    assert not SYS_READER.is_admin and SYS_READER.reads_all
    assert not SYS_CUSTOM.reads_all
    # Today's cloud admin is unchanged; a project's admin still reads only its project.
    assert ADMIN.is_admin and ADMIN.reads_all and not ADMIN.system
    assert not A_ADMIN.is_admin and not A_ADMIN.reads_all
    assert not SYS_READER.unscoped


@pytest.mark.parametrize("op, target", [
    ("identity:create_project", {}), ("compute:flavors:create", {}),
    ("compute:servers:delete", {"project_id": "B"}), ("network:delete_network",
                                                     {"project_id": "B"}),
    ("compute:hypervisors:list", {}), ("identity:list_users", {}),
    ("identity:create_system_grant_for_user", {}),
])
def test_system_admin_may_do_what_the_cloud_admin_does(op: str, target: dict) -> None:
    assert allowed(SYS_ADMIN, op, **target)
    assert allowed(ADMIN, op, **target)


@pytest.mark.parametrize("creds", [SYS_READER, SYS_MEMBER])
@pytest.mark.parametrize("op, target, expected", [
    ("compute:servers:index", {}, True), ("compute:servers:show", {"project_id": "B"}, True),
    ("identity:list_projects", {}, True), ("identity:get_project", {"project_id": "B"}, True),
    ("identity:list_users", {}, True), ("network:get_network", {"project_id": "B"}, True),
    ("image:get_image", {"project_id": "B"}, True), ("compute:hypervisors:list", {}, True),
    ("identity:list_role_assignments", {}, True),
    ("identity:check_system_grant_for_user", {}, True),
    ("compute:servers:delete", {"project_id": "B"}, False),
    ("compute:servers:action", {"project_id": "B"}, False),
    ("identity:create_project", {}, False), ("identity:delete_user", {}, False),
    ("network:create_network", {"project_id": "B"}, False),
    ("image:modify_image", {"project_id": "B"}, False),
    ("identity:create_system_grant_for_user", {}, False),
    ("cluster:tokens:list", {}, False), ("cluster:tokens:create", {}, False),
])
def test_system_reader_reads_everything_and_changes_nothing(
        creds: Credentials, op: str, target: dict, expected: bool) -> None:
    assert allowed(creds, op, **target) is expected


def test_a_system_role_that_is_not_a_reader_reads_nothing_of_others() -> None:
    assert not allowed(SYS_CUSTOM, "compute:servers:index")
    assert not allowed(SYS_CUSTOM, "identity:list_projects")
    assert allowed(SYS_CUSTOM, "compute:flavors:list")
    assert allowed(SYS_CUSTOM, "identity:change_password", user_id="sc")
    assert not allowed(SYS_CUSTOM, "identity:change_password", user_id="other")


def test_project_only_creates_refuse_a_system_token_with_a_clear_message() -> None:
    for creds in (SYS_ADMIN, SYS_READER):
        assert not allowed(creds, "compute:servers:create", project_id=None)
        with pytest.raises(Forbidden, match="system-scoped token.*project-scoped token"):
            enforce(creds, "compute:servers:create", project_id=None)
    assert allowed(ADMIN, "compute:servers:create", project_id="P")


def test_read_classification() -> None:
    reads = {op for op in RULES if is_read(op)}
    assert {"compute:limits", "image:download_image", "network:get_agent",
            "identity:list_system_grants_for_user"} <= reads
    writes = {op for op in RULES if not is_read(op)}
    assert {"compute:servers:create", "image:modify_member", "identity:change_password",
            "cluster:tokens:list", "network:update_quota"} <= writes
