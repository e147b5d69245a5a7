"""Network quota resources (Neutron's names) and their defaults."""

from __future__ import annotations

from .quotas import UNLIMITED

DEFAULTS: dict[str, int] = {
    "network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
    "security_group": 10, "security_group_rule": 100,
}


def validate_limit(resource: str, value: object) -> int:
    """An integer >= -1 (-1: unlimited); strings of digits are accepted as Neutron does."""
    if resource not in DEFAULTS:
        raise ValueError(f"Unrecognized attribute(s) '{resource}'")
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not an integer")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"'{value}' is not an integer") from None
    if not isinstance(value, int) or value < UNLIMITED:
        raise ValueError(f"'{value}' should be greater than or equal to -1")
    return value


def over(limit: int, in_use: int, requested: int = 1) -> bool:
    return limit != UNLIMITED and in_use + requested > limit
