"""Which quota and limit fields each compute microversion shows."""

from __future__ import annotations

from atwill.controller.compute import limits, quotas
from atwill.core.microversion import Version


def test_quota_set_fields_by_version() -> None:
    at_21 = set(quotas.set_names(Version(2, 1)))
    assert {"fixed_ips", "floating_ips", "security_groups", "injected_files",
            "server_groups", "key_pairs"} <= at_21
    assert "networks" not in at_21
    at_36 = set(quotas.set_names(Version(2, 36)))
    assert not at_36 & {"fixed_ips", "floating_ips", "security_groups",
                        "security_group_rules"}
    assert "injected_files" in at_36
    at_57 = set(quotas.set_names(Version(2, 57)))
    assert not at_57 & {"injected_files", "injected_file_content_bytes",
                        "injected_file_path_bytes"}
    assert at_57 == {"instances", "cores", "ram", "key_pairs", "metadata_items",
                     "server_groups", "server_group_members"}


def test_quota_class_fields_by_version() -> None:
    at_21 = set(quotas.class_names(Version(2, 1)))
    assert "server_groups" not in at_21 and "floating_ips" in at_21
    at_50 = set(quotas.class_names(Version(2, 50)))
    assert "server_groups" in at_50 and "floating_ips" not in at_50
    assert "injected_files" not in set(quotas.class_names(Version(2, 57)))


def test_limits_fields_by_version() -> None:
    def names(minor: int) -> set[str]:
        version = Version(2, minor)
        return {n for n, _r, gone in limits.MAXIMA + limits.USED
                if limits._shown(version, gone)}

    assert {"maxTotalFloatingIps", "maxImageMeta", "maxPersonality"} <= names(1)
    assert "maxTotalFloatingIps" not in names(36) and "maxImageMeta" in names(36)
    assert "maxImageMeta" not in names(39) and "maxPersonality" in names(39)
    assert names(57) == {"maxTotalInstances", "maxTotalCores", "maxTotalRAMSize",
                         "maxTotalKeypairs", "maxServerMeta", "maxServerGroups",
                         "maxServerGroupMembers", "totalInstancesUsed", "totalCoresUsed",
                         "totalRAMUsed", "totalServerGroupsUsed"}
