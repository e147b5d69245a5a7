"""Cinder's quotas: resources, defaults, and the checks with Cinder's 413 messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import BadRequest, PayloadTooLarge

DEFAULTS = {"volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10,
            "backup_gigabytes": 1000, "groups": 10, "per_volume_gigabytes": -1}
# Per volume type: volumes_<type>, snapshots_<type>, gigabytes_<type>, unlimited by default.
PER_TYPE = ("volumes", "snapshots", "gigabytes")
MAX_LIMIT = 2**31 - 1


def names(type_names: Iterable[str]) -> list[str]:
    return [*DEFAULTS, *(f"{r}_{t}" for t in sorted(type_names) for r in PER_TYPE)]


def default(resource: str) -> int:
    return DEFAULTS.get(resource, -1)


def parse_limit(resource: str, value: object) -> int:
    """A quota value from a request: an integer >= -1 (strings of digits too, as Cinder)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise BadRequest(f"Invalid input for field/attribute {resource}. Value: {value}. "
                         "is not of type 'integer'")
    if value < -1 or value > MAX_LIMIT:
        raise BadRequest(f"Quota limit {value} for {resource} must be in the range of -1 "
                         f"and {MAX_LIMIT}.")
    return value


def check_size(size: int, limits: Mapping[str, int]) -> None:
    per_volume = limits.get("per_volume_gigabytes", -1)
    if per_volume >= 0 and size > per_volume:
        raise PayloadTooLarge(f"VolumeSizeExceedsLimit: Requested volume size {size}G is "
                              f"larger than maximum allowed limit {per_volume}G.")


def check(limits: Mapping[str, int], used: Mapping[str, int],
          deltas: Mapping[str, int]) -> None:
    """Refuse deltas that take any resource past its limit, with Cinder's words."""
    for resource, delta in deltas.items():
        limit = limits.get(resource, -1)
        if delta <= 0 or limit < 0 or used.get(resource, 0) + delta <= limit:
            continue
        base = resource.split("_", 1)[0]
        if base == "gigabytes":
            raise PayloadTooLarge(
                f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds "
                f"allowed {resource} quota. Requested {delta}G, quota is {limit}G and "
                f"{used.get(resource, 0)}G has been consumed.")
        what = "volumes" if base == "volumes" else "snapshots"
        kind = "VolumeLimitExceeded" if base == "volumes" else "SnapshotLimitExceeded"
        raise PayloadTooLarge(f"{kind}: Maximum number of {what} allowed ({limit}) "
                              f"exceeded for quota '{resource}'.")
