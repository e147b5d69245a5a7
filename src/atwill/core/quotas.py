"""Compute quota resources, their defaults, and how limits and usage combine."""

from __future__ import annotations

UNLIMITED = -1

# Nova's defaults; 'injected_*' and the network ones only exist in older microversions.
DEFAULTS: dict[str, int] = {
    "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "metadata_items": 128,
    "server_groups": 10, "server_group_members": 10,
    "injected_files": 5, "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
    "fixed_ips": -1, "floating_ips": 10, "security_groups": 10, "security_group_rules": 20,
    "networks": 10,
}
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules",
                     "networks")
FILE_RESOURCES = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def visible(version_minor: int) -> list[str]:
    """Resource names shown at compute microversion 2.<minor> (2.36 and 2.57 drop some)."""
    names = list(DEFAULTS)
    if version_minor >= 36:
        names = [n for n in names if n not in NETWORK_RESOURCES]
    if version_minor >= 57:
        names = [n for n in names if n not in FILE_RESOURCES]
    return names


def validate_limit(resource: str, value: object) -> int:
    """A hard limit must be an integer >= -1 (-1 means unlimited)."""
    if resource not in DEFAULTS:
        raise ValueError(f"Unknown quota resource {resource!r}.")
    if isinstance(value, bool):
        raise ValueError(f"Quota limit for {resource} must be an integer, got {value!r}.")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(
                f"Quota limit for {resource} must be an integer, got {value!r}.") from None
    if not isinstance(value, int) or value < UNLIMITED:
        raise ValueError(f"Quota limit {value!r} for {resource} must be an integer >= -1.")
    return value


def headroom(limit: int, in_use: int, requested: int) -> bool:
    """Whether requested more units fit under limit given in_use."""
    return limit == UNLIMITED or in_use + requested <= limit
